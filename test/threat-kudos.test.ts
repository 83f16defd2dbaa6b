/**
 * The KUDOS threat rows (src/attack/kudos-threats.ts): a replayed divergent message and a KUDOS
 * message protected with a stale context are refused by the server, whose state and context do not
 * move; the same bytes at a server that never retired CTX_OLD are accepted and move it to PENDING.
 * The threat report shows both rows as computed here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KUDOS_REPLAY_THREAT, KUDOS_STALE_THREAT, runKudosReplay, runKudosStaleContext, runKudosThreats } from '../src/attack/kudos-threats.js';
import { KUDOS_THREATS_TEST, renderReport } from '../src/attack/report.js';

/** "state A → B, context x → y" from an outcome's detail. */
function movement(detail: string): { stateBefore: string; stateAfter: string; contextBefore: string; contextAfter: string } {
  const match = /state (\w+) → (\w+), context (\w+) → (\w+)/.exec(detail);
  assert.ok(match, `the detail names the server's state and context: ${detail}`);
  return { stateBefore: match[1]!, stateAfter: match[2]!, contextBefore: match[3]!, contextAfter: match[4]! };
}

describe('KUDOS threat rows', () => {
  it(KUDOS_THREATS_TEST, () => {
    for (const row of [runKudosReplay(), runKudosStaleContext()]) {
      assert.equal(row.outcome.verdict, 'detected', `${row.threat}: ${row.outcome.detail}`);
      assert.match(row.outcome.detail, /^server: refused with 4\.00 /, 'RFC 8613 §8.2: a request that does not decrypt gets 4.00');
      const moved = movement(row.outcome.detail);
      assert.equal(moved.stateBefore, 'IDLE');
      assert.equal(moved.stateAfter, 'IDLE', `${row.threat}: the server's state did not move`);
      assert.equal(moved.contextAfter, moved.contextBefore, `${row.threat}: the server's context did not move`);
    }
  });

  it('baseline: at a server that never retired CTX_OLD the same message is accepted and starts an execution', () => {
    for (const row of runKudosThreats()) {
      assert.equal(row.baseline.verdict, 'undetected', `${row.threat}: ${row.baseline.detail}`);
      assert.match(row.baseline.detail, /^accepted as a KUDOS request/);
      assert.equal(movement(row.baseline.detail).stateAfter, 'PENDING');
    }
  });

  it('the threat report shows both rows as run, and maps them to the replay requirements', () => {
    const report = renderReport(new Map(), undefined, runKudosThreats());
    const section = report.slice(report.indexOf('## Key update (KUDOS'), report.indexOf('## Requirements'));
    for (const threat of [KUDOS_REPLAY_THREAT, KUDOS_STALE_THREAT]) {
      const row = section.split('\n').find((line) => line.startsWith(`| ${threat} |`));
      assert.ok(row, `a row for ${threat}`);
      assert.match(row, /\| detected: server: refused with 4\.00 .* \| undetected: accepted as a KUDOS request/);
    }
    assert.match(report, new RegExp(`\\| R1\\.2 \\|.*\`${KUDOS_THREATS_TEST}\``));
    assert.doesNotMatch(renderReport(new Map()), /\| KUDOS: a replayed/, 'without runs, no row is written');
  });
});
