/**
 * The rekey policy's key-usage limit (src/kudos/policy.ts): q per AEAD algorithm from
 * draft-ietf-core-oscore-key-limits §2.1.1 (2^20 for every algorithm OSCORE uses), counted as the encryptions under the current Sender
 * Key — the Sender Sequence Number, which survives restarts — so a context that has used most of
 * its q before this process started is updated at once, and the configured period is postponed
 * after a failed update but the hard limit is not.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KudosPolicy, aeadMessageLimit } from '../src/kudos/policy.js';
import { hex, sameContext } from './kudos-helpers.js';
import { kudosStack } from './kudos-stack.js';

test('q per algorithm (key-limits §2.1.1): 2^20 for AES-CCM with either tag (10-13, 30-33), AES-GCM (1-3) and ChaCha20/Poly1305 (24); 90 % of it', () => {
  for (const alg of [10, 11, 12, 13, 30, 31, 32, 33, 1, 2, 3, 24]) assert.equal(aeadMessageLimit(alg), Math.floor(2 ** 20 * 0.9), `alg ${alg}`);
  assert.equal(aeadMessageLimit(-999), Math.floor(2 ** 20 * 0.9), 'an unknown algorithm gets the smallest limit');
});

test('the configured period is postponed after a failed update; the AEAD limit is not', () => {
  const policy = new KudosPolicy({ maxMessages: 10 }, 10);
  assert.equal(policy.due(9), false);
  assert.equal(policy.due(10), true);
  policy.postpone(10);
  assert.equal(policy.due(19), false);
  assert.equal(policy.due(20), true);
  const limit = aeadMessageLimit(10);
  policy.postpone(limit);
  assert.equal(policy.due(limit), true, 'the limit is hard (§4.3)');
  policy.reset();
  assert.equal(policy.due(9), false, 'a new Sender Key counts from its first message');
});

test('a server whose context used most of its q before this process started updates it in its first response', async () => {
  const s = await kudosStack({ serverFirstSequence: aeadMessageLimit(10) });
  try {
    const before = hex(s.serverSession.currentSecrets.masterSecret);
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'one' })).payload.toString(), 'one');
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'two' })).payload.toString(), 'two');
    assert.ok(s.serverEvents.some((e) => e.type === 'completed'), 'the server started and completed an update');
    assert.notEqual(hex(s.serverSession.currentSecrets.masterSecret), before);
    assert.ok(sameContext(s.clientSession, s.serverSession));
    assert.ok(s.serverSession.sentWithCurrent < 10, 'the new Sender Key counts from 0');
    assert.deepEqual(s.ledger.reused, []);
  } finally {
    await s.close();
  }
});
