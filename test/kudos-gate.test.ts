/**
 * KUDOS through the client's OSCORE requester and the server's stages, over loopback UDP
 * (draft-ietf-core-oscore-key-update §4.3, Appendix A.1/A.2), with the per-peer gate of §4.3.7:
 * - the forward flow (`rekey()`): the divergent request waits for the exchanges in flight, the
 *   requests made meanwhile are held and go out under CTX_NEW;
 * - the reverse flow (`startKudos` on the server): the client answers the divergent response with
 *   a convergent request, and the server holds the peer's other requests until it arrives;
 * - a held request that waits too long, or finds the queue full, fails with a clear error.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KudosGateError, PeerGate } from '../src/kudos/gate.js';
import { hex, sameContext } from './kudos-helpers.js';
import { kudosStack } from './kudos-stack.js';

test('forward flow: rekey() updates both peers; requests in flight finish first, requests made during it go out on CTX_NEW', async () => {
  const s = await kudosStack();
  try {
    const before = hex(s.clientSession.currentSecrets.masterSecret);
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'one' })).payload.toString(), 'one');
    const slow = s.client.request({ method: 'GET', uri: `${s.base}/slow` });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const rekey = s.peer.rekey();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(s.peer.gate.closed, true);
    const during = s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'during' });
    await rekey;
    assert.equal((await slow).payload.toString(), 'slow');
    assert.equal((await during).payload.toString(), 'during');
    // §4.3.7: the KUDOS request left only after the slow exchange ended; the held one after the update.
    assert.deepEqual(s.log, ['echo one', 'slow start', 'slow end', 'kudos request', 'echo during']);
    assert.notEqual(hex(s.clientSession.currentSecrets.masterSecret), before);
    assert.equal(s.clientSession.state, 'IDLE');
    // The request made during the update was the server's key confirmation.
    assert.equal(s.serverSession.state, 'IDLE');
    assert.ok(sameContext(s.clientSession, s.serverSession));
    assert.deepEqual(s.ledger.reused, []);
    assert.ok(s.clientEvents.some((e) => e.type === 'completed'));
  } finally {
    await s.close();
  }
});

test('reverse flow: the server starts KUDOS in a response; the client answers convergent; the peer\'s other requests wait on the server', async () => {
  const s = await kudosStack();
  try {
    const before = hex(s.serverSession.currentSecrets.masterSecret);
    s.serverSecurity.startKudos('client');
    const first = await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'first' });
    assert.equal(first.payload.toString(), 'first');
    // The divergent response put the client in PENDING and its convergent request is on its way.
    const after = await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'after' });
    assert.equal(after.payload.toString(), 'after');
    assert.deepEqual(s.log, ['echo first', 'kudos request', 'echo after']);
    assert.equal(s.clientSession.state, 'IDLE');
    assert.equal(s.serverSession.state, 'IDLE');
    assert.notEqual(hex(s.serverSession.currentSecrets.masterSecret), before);
    assert.ok(sameContext(s.clientSession, s.serverSession));
    assert.deepEqual(s.ledger.reused, []);
  } finally {
    await s.close();
  }
});

test('reverse flow: a request sent before the divergent response reached the client is held by the server until the convergent one', async () => {
  const s = await kudosStack({ nstart: 4 });
  try {
    s.serverSecurity.startKudos('client');
    s.relay.delayToClient = 150; // the divergent response is slow to reach the client
    const first = s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'first' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    // The server is BUSY now; this request, under CTX_OLD, must wait for the update (§4.3.7).
    const second = s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'second' });
    assert.equal((await first).payload.toString(), 'first');
    s.relay.delayToClient = 0;
    assert.equal((await second).payload.toString(), 'second');
    assert.deepEqual(s.log, ['echo first', 'kudos request', 'echo second']);
    assert.ok(sameContext(s.clientSession, s.serverSession));
    assert.equal(s.serverSession.state, 'IDLE');
    assert.deepEqual(s.ledger.reused, []);
  } finally {
    await s.close();
  }
});

test('the gate: a held request fails after its timeout, and one beyond the queue bound fails at once', async () => {
  const gate = new PeerGate({ peer: 'p', maxHeld: 1, holdTimeoutMs: 50 });
  gate.close();
  const first = gate.admit();
  await assert.rejects(gate.admit(), (e: Error) => e instanceof KudosGateError && /1 requests already held/.test(e.message));
  await assert.rejects(first, (e: Error) => e instanceof KudosGateError && /did not finish within 50 ms/.test(e.message));
  gate.open();
  const release = await gate.admit();
  assert.equal(gate.inFlight, 1);
  gate.close();
  const drained = gate.drained(1000);
  release();
  await drained;
});

test('rekey() with an exchange that never ends fails clearly and keeps CTX_OLD', async () => {
  const s = await kudosStack({ client: { drainTimeoutMs: 100 } });
  try {
    const before = hex(s.clientSession.currentSecrets.masterSecret);
    const slow = s.client.request({ method: 'GET', uri: `${s.base}/slow` });
    await new Promise((resolve) => setTimeout(resolve, 30));
    await assert.rejects(s.peer.rekey(), /still outstanding after 100 ms; KUDOS not started/);
    assert.equal((await slow).payload.toString(), 'slow');
    assert.equal(hex(s.clientSession.currentSecrets.masterSecret), before);
    assert.equal(s.peer.gate.closed, false);
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'ok' })).payload.toString(), 'ok');
  } finally {
    await s.close();
  }
});

test('the client policy: after maxMessages requests the next one waits for an update it starts itself', async () => {
  const s = await kudosStack({ clientPolicy: { maxMessages: 3 } });
  try {
    const initial = hex(s.clientSession.currentSecrets.masterSecret);
    for (let i = 0; i < 3; i++) await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: `m${i}` });
    assert.equal(hex(s.clientSession.currentSecrets.masterSecret), initial);
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'm3' })).payload.toString(), 'm3');
    assert.deepEqual(s.log, ['echo m0', 'echo m1', 'echo m2', 'kudos request', 'echo m3']);
    assert.notEqual(hex(s.clientSession.currentSecrets.masterSecret), initial);
    assert.ok(sameContext(s.clientSession, s.serverSession));
  } finally {
    await s.close();
  }
});
