/**
 * The rekey policy's key-usage limit (src/kudos/policy.ts): q per AEAD algorithm from the COSE
 * algorithms specification (2^20 for every 64-bit-tag AES-CCM, 2^23 for the 128-bit-tag ones, 2^32
 * for AES-GCM, 2^24.5 for ChaCha20/Poly1305), counted as the encryptions under the current Sender
 * Key — the Sender Sequence Number, which survives restarts — so a context that has used most of
 * its q before this process started is updated at once, and the configured period is postponed
 * after a failed update but the hard limit is not.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KudosPolicy, aeadMessageLimit } from '../src/kudos/policy.js';
import { hex, sameContext } from './kudos-helpers.js';
import { kudosStack } from './kudos-stack.js';

test('q per algorithm: every 64-bit-tag AES-CCM (10-13) at 2^20, 128-bit-tag AES-CCM (30-33) at 2^23, AES-GCM at 2^32, ChaCha20/Poly1305 at 2^24.5; 90 % of it', () => {
  for (const alg of [10, 11, 12, 13]) assert.equal(aeadMessageLimit(alg), Math.floor(2 ** 20 * 0.9), `alg ${alg}`);
  for (const alg of [30, 31, 32, 33]) assert.equal(aeadMessageLimit(alg), Math.floor(2 ** 23 * 0.9), `alg ${alg}`);
  for (const alg of [1, 2, 3]) assert.equal(aeadMessageLimit(alg), Math.floor(2 ** 32 * 0.9), `alg ${alg}`);
  assert.equal(aeadMessageLimit(24), Math.floor(2 ** 24.5 * 0.9));
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
