/**
 * R1.10 forward secrecy: a recorded EDHOC run + OSCORE exchange, the session thrown away, does not
 * decrypt with both parties' long-term private keys (every DH value they give is tried as G_XY and
 * fails at message_3's AEAD), and does with the session key PRK_out. The threat report shows it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decryptWithEphemeralGuess,
  FORWARD_SECRECY_SECRET,
  recordEdhocOscoreExchange,
  runForwardSecrecy,
  runForwardSecrecyMatrix,
  runPreSharedBaseline,
} from '../src/attack/forward-secrecy.js';
import { FORWARD_SECRECY_TEST, renderReport } from '../src/attack/report.js';
import { generatePrivateKey, CoseCurve } from '../src/cose/index.js';

describe('forward secrecy (R1.10)', () => {
  it(FORWARD_SECRECY_TEST, () => {
    for (const method of [0, 3] as const) {
      for (const suite of [0, 2]) {
        const outcome = runForwardSecrecy(method, suite);
        const where = `method ${method}, suite ${suite}`;
        assert.ok(outcome.withLongTermKeys.length >= 1, where);
        for (const attempt of outcome.withLongTermKeys) {
          assert.equal(attempt.result.ok, false, `${where}: ${attempt.label} must not decrypt`);
          assert.match(attempt.result.ok ? '' : attempt.result.failedAt, /message_3: AEAD authentication failed/);
        }
        assert.deepEqual(outcome.withSessionKey, { ok: true, request: 'GET /door', response: FORWARD_SECRECY_SECRET }, where);
        assert.deepEqual(outcome.control, outcome.withSessionKey, `${where}: the attacker's decryptor works given G_XY`);
      }
    }
  });

  it('method 3: the attacker computes G_RX and G_IY from the long-term keys (eight DH values), and still lacks G_XY', () => {
    const outcome = runForwardSecrecy(3, 0);
    const labels = outcome.withLongTermKeys.map((a) => a.label);
    assert.ok(labels.includes('Responder long-term key × G_X'), 'G_RX is tried');
    assert.ok(labels.includes('Initiator long-term key × G_Y'), 'G_IY is tried');
    assert.equal(labels.length, 9);
  });

  it('method 3: G_XY alone is not enough either — the decryptor really uses the long-term keys for PRK_3e2m', () => {
    const run = recordEdhocOscoreExchange(3, 0);
    assert.equal(decryptWithEphemeralGuess(run.recording, run.longTerm, run.ephemeralSecret).ok, true);
    const wrongResponderKey = { ...run.longTerm, responderKey: generatePrivateKey(CoseCurve.X25519) };
    assert.equal(decryptWithEphemeralGuess(run.recording, wrongResponderKey, run.ephemeralSecret).ok, false);
  });

  it('baseline: OSCORE with a pre-shared master secret decrypts with that long-term secret', () => {
    assert.deepEqual(runPreSharedBaseline(), { ok: true, request: 'GET /door', response: FORWARD_SECRECY_SECRET });
  });

  it('the threat report shows the runs: protected with long-term keys, decrypted with the session key, R1.10 mapped to this test', () => {
    const report = renderReport(new Map(), runForwardSecrecyMatrix());
    const section = report.slice(report.indexOf('## Forward secrecy (R1.10)'), report.indexOf('## Requirements'));
    const rows = section.split('\n').filter((l) => l.startsWith('| EDHOC method'));
    assert.equal(rows.length, 8);
    for (const row of rows) assert.match(row, /\| protected: \d+ attempt\(s\) .* \| decrypted: GET \/door → "door code 4711" \| decrypted: /);
    assert.match(section, /\| OSCORE, pre-shared master secret \(baseline\) \| leaked: /);
    assert.ok(report.includes(`| R1.10 | \`${FORWARD_SECRECY_TEST}\` |`), 'R1.10 → the test');
    assert.doesNotMatch(report, /R1\.10 \/ R5\.7 forward secrecy .*\*\*open\*\*/);
  });
});
