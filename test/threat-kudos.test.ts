/**
 * The KUDOS threat rows (src/attack/kudos-threats.ts): a request replayed after a server restart
 * is answered with a B.1.2 Echo challenge and not processed; a replayed divergent message and a KUDOS
 * message protected with a stale context are refused by the server, whose state and context do not
 * move; the same bytes at a server that never retired CTX_OLD are accepted and move it to PENDING.
 * The threat report shows both rows as computed here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KUDOS_REPLAY_THREAT, KUDOS_RESTART_THREAT, KUDOS_STALE_THREAT, runKudosReplay, runKudosRestartReplay, runKudosStaleContext, runKudosThreats } from '../src/attack/kudos-threats.js';
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
    // RFC 8613 B.1.2: after the restart the request decrypts but is not processed; a protected 4.01 with Echo answers it.
    const restart = runKudosRestartReplay();
    assert.equal(restart.outcome.verdict, 'detected', restart.outcome.detail);
    assert.match(restart.outcome.detail, /^server: refused with 4\.01 \(freshness unknown since the restart .*\), answered with a protected response \(outer 2\.04, its own Partial IV present\) holding a 4\.01 with Echo/);
    const moved = movement(restart.outcome.detail);
    assert.equal(moved.stateAfter, moved.stateBefore);
    assert.equal(moved.contextAfter, moved.contextBefore);
  });

  it('baseline: at a server with no memory of the recorded request it is accepted and processed', () => {
    const restart = runKudosRestartReplay();
    assert.equal(restart.baseline.verdict, 'undetected', restart.baseline.detail);
    assert.match(restart.baseline.detail, /^accepted as a non KUDOS request \(via current\)/);
  });

  it('baseline: at a server that never retired CTX_OLD the same message is accepted and starts an execution', () => {
    for (const row of [runKudosReplay(), runKudosStaleContext()]) {
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
      assert.match(row, /\| detected: server: refused with 4\.00 .* \| a server that kept CTX_OLD: undetected: accepted as a KUDOS request/);
    }
    const restartRow = section.split('\n').find((line) => line.startsWith(`| ${KUDOS_RESTART_THREAT} |`));
    assert.ok(restartRow, 'a row for the replay after a restart');
    assert.match(restartRow, /\| detected: server: refused with 4\.01 .* \| a server with the same context and no memory of the request: undetected: accepted as a non KUDOS request/);
    assert.match(report, new RegExp(`\\| R1\\.2 \\|.*\`${KUDOS_THREATS_TEST}\``));
    assert.doesNotMatch(renderReport(new Map()), /\| KUDOS: a replayed/, 'without runs, no row is written');
  });
});
