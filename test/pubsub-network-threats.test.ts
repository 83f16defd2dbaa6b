/**
 * The pub-sub threat rows over the network: a real broker on a UDP socket, the adversarial broker's
 * tampering done by a relay in front of its subscriber (src/attack/pubsub-network-attacks.ts); the
 * unprotected broker is the baseline where the same attack succeeds.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PUBSUB_THREAT_ROWS } from '../src/attack/pubsub-attacks.js';
import { networkRunKey, runPubSubNetworkThreat, runPubSubNetworkThreats } from '../src/attack/pubsub-network-attacks.js';
import { renderReport } from '../src/attack/report.js';
import { assertPubSubRow } from './support/pubsub-threats.js';

describe('pub-sub threat rows over UDP: a real broker, the adversary on the notifications it serves', () => {
  for (const row of PUBSUB_THREAT_ROWS) {
    test(`pub-sub network threat row ${row.id}: ${row.threat}`, async () => {
      assertPubSubRow(row, await runPubSubNetworkThreat(row, 'none'), await runPubSubNetworkThreat(row, 'protected'));
    });
  }
});

test('the threat report shows the network rows from a run, and "not run" without one', async () => {
  assert.match(renderReport(new Map()), /### The same threats over the network[\s\S]*\| T3:5\.1 broker drops a publication \(NR5\.4\) \| NOT REQUIRED \| — \| not run \| not run \|/);
  const results = await runPubSubNetworkThreats();
  const report = renderReport(new Map(), undefined, undefined, results);
  const replay = PUBSUB_THREAT_ROWS.find((r) => r.id === 'replay')!;
  assert.equal(results.get(networkRunKey(replay, 'protected'))?.verdict, 'detected');
  assert.match(report, /\| T1:5\.5 \/ T2:5\.1 broker replays an old publication \| REQUIRED \| R5\.4 \| undetected: subscriber accepted "t=0", "t=1", "t=0" \| detected: subscriber refused replayed-or-older/);
});
