/**
 * The integrity limit (src/kudos/integrity.ts, policy.ts aeadIntegrityLimit): failed decryptions
 * under a Recipient Key are counted, the count survives a restart with one durable write per
 * step (not per failure), and at the limit the key accepts nothing more (§4.3's hard limits): the
 * server answers the peer's next verified request with a divergent KUDOS message instead of
 * processing it, the client starts its own update, and traffic flows on the new context.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import { encodeMessage } from '../src/coap/codec.js';
import { MessageType, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { KudosSession, aeadIntegrityLimit, type KudosRecord, type KudosSessionOptions, type KudosStorage } from '../src/kudos/index.js';
import { CLIENT_IDENTITY, MASTER_SALT, MASTER_SECRET, NonceLedger, SERVER_IDENTITY, request, response, sameContext, text } from './kudos-helpers.js';
import { kudosStack } from './kudos-stack.js';

/** A storage in memory that counts its durable writes. */
class CountingStorage implements KudosStorage {
  record: KudosRecord | undefined;
  writes = 0;
  read(): KudosRecord | undefined {
    return this.record && structuredClone(this.record);
  }
  write(record: KudosRecord): void {
    this.writes += 1;
    this.record = structuredClone(record);
  }
}

const OTHER_SECRET = Uint8Array.from(Buffer.from('ff'.repeat(16), 'hex'));

function open(identity: typeof CLIENT_IDENTITY, storage: KudosStorage, options: Partial<KudosSessionOptions> = {}, masterSecret = MASTER_SECRET): KudosSession {
  return KudosSession.open({ identity, storage, ...options }, { masterSecret, masterSalt: MASTER_SALT });
}

/** A request that names the client's kid but was protected with another key: a forgery. */
function forgedRequest(): CoapMessage {
  return open(CLIENT_IDENTITY, new CountingStorage(), {}, OTHER_SECRET).protectRequest(request('echo', 'forged')).message;
}

test('v per algorithm (key-limits §2.1.1): 2^14 for the 64-bit-tag AES-CCM (10-13), 2^20 for the 128-bit-tag ones, AES-GCM and ChaCha20/Poly1305', () => {
  for (const alg of [10, 11, 12, 13]) assert.equal(aeadIntegrityLimit(alg), 2 ** 14);
  for (const alg of [30, 31, 32, 33, 1, 2, 3, 24]) assert.equal(aeadIntegrityLimit(alg), 2 ** 20);
  assert.equal(aeadIntegrityLimit(-999), 2 ** 14, 'an unknown algorithm gets the smallest limit');
});

test('failed decryptions are counted per Recipient Key and survive a restart, written once per step (limit/64), never under the true count', () => {
  const storage = new CountingStorage();
  let server = open(SERVER_IDENTITY, storage, { integrityLimit: 640 });
  const writesAtOpen = storage.writes;
  for (let i = 0; i < 95; i++) {
    const r = server.unprotectRequest(forgedRequest());
    assert.equal(r.ok, false);
  }
  assert.equal(server.failedDecryptions, 95);
  assert.equal(storage.writes - writesAtOpen, 10, 'one write per 10 failures (640 / 64), not one per failure');
  assert.equal(storage.record!.current.failedDecryptions, 100, 'the record holds an upper bound of the count');
  server = open(SERVER_IDENTITY, storage, { integrityLimit: 640 });
  assert.equal(server.failedDecryptions, 100, 'a restart resumes at the bound: at most one step over, never under');
  // A genuine request is no failure, and a malformed option or an unknown kid is no decryption.
  const client = open(CLIENT_IDENTITY, new CountingStorage());
  assert.equal(server.unprotectRequest(client.protectRequest(request('echo')).message).ok, false, 'the restarted server challenges it (B.1.2)');
  assert.equal(server.failedDecryptions, 100);
});

test('at the limit the server processes nothing more under the key; the peer\'s next request gets a divergent answer, and the update replaces the key', () => {
  const ledger = new NonceLedger();
  const serverStorage = new CountingStorage();
  const server = open(SERVER_IDENTITY, serverStorage, { integrityLimit: 5, onEncrypt: ledger.record });
  const client = open(CLIENT_IDENTITY, new CountingStorage(), { onEncrypt: ledger.record });
  // Before: traffic flows.
  const first = server.unprotectRequest(client.protectRequest(request('echo', 'before')).message);
  assert.ok(first.ok);
  for (let i = 0; i < 5; i++) assert.equal(server.unprotectRequest(forgedRequest()).ok, false);
  assert.equal(server.integrityLimitReached, true);
  const writes = serverStorage.writes;
  for (let i = 0; i < 20; i++) server.unprotectRequest(forgedRequest());
  assert.equal(serverStorage.writes, writes, 'forgeries past the limit cost no write');

  const sent = client.protectRequest(request('echo', 'refused'));
  const refused = server.unprotectRequest(sent.message);
  assert.ok(!refused.ok, 'a genuine request under the exhausted key is not processed');
  assert.match(refused.reason, /integrity limit/);
  assert.ok(refused.keyUpdate, 'but it authenticates the peer: answer it with a KUDOS message');
  const challenge: CoapMessage = { ...response(sent.message), code: 0x81, options: [{ number: OptionNumber.Echo, value: Uint8Array.of(1, 2, 3) }] };
  const divergent = server.protectResponse(challenge, refused.keyUpdate, { startKudos: true });
  assert.equal(server.state, 'BUSY');
  const answer = client.unprotectResponse(divergent.message, sent.outgoing);
  assert.ok(answer.ok && answer.kudos, 'the client verifies the divergent response');
  assert.equal(client.state, 'PENDING');
  // The client repeats its request: convergent under CTX_NEW, the update completes on the server.
  const repeated = client.protectRequest(request('echo', 'after'));
  const again = server.unprotectRequest(repeated.message);
  assert.ok(again.ok, again.ok ? '' : again.reason);
  assert.equal(text(again.message), 'after');
  assert.equal(server.state, 'IDLE');
  assert.equal(server.integrityLimitReached, false, 'the new Recipient Key starts from zero');
  assert.equal(server.failedDecryptions, 0);
  assert.equal(serverStorage.record!.current.failedDecryptions, undefined);
  const reply = client.unprotectResponse(server.protectResponse(response(repeated.message, 'ok'), again.request).message, repeated.outgoing);
  assert.ok(reply.ok);
  assert.equal(client.state as string, 'IDLE', 'the answer under CTX_NEW completes the update on the client');
  assert.ok(sameContext(client, server));
  assert.deepEqual(ledger.reused, []);
});

test('a CTX_OLD whose Recipient Key reached the limit is not retained (§4.6), even with a retention policy', () => {
  const server = open(SERVER_IDENTITY, new CountingStorage(), { integrityLimit: 2, retainOldMs: 60_000 });
  const client = open(CLIENT_IDENTITY, new CountingStorage());
  for (let i = 0; i < 2; i++) server.unprotectRequest(forgedRequest());
  const stale = client.protectRequest(request('echo', 'late, under CTX_OLD'));
  // The update, started by the client (forward flow).
  const divergent = client.protectRequest(request('.well-known/kudos'), { startKudos: true });
  const received = server.unprotectRequest(divergent.message);
  assert.ok(received.ok);
  const convergent = server.protectResponse(response(received.message), received.request);
  assert.ok(client.unprotectResponse(convergent.message, divergent.outgoing).ok);
  assert.ok(server.unprotectRequest(client.protectRequest(request('echo', 'new')).message).ok);
  assert.equal(server.state, 'IDLE');
  const late = server.unprotectRequest(stale.message);
  assert.equal(late.ok, false, 'the late CTX_OLD request is refused: that CTX_OLD was not retained');
});

test('the client refuses responses under a Recipient Key past its limit and names why', () => {
  const server = open(SERVER_IDENTITY, new CountingStorage());
  const forger = open(SERVER_IDENTITY, new CountingStorage(), {}, OTHER_SECRET);
  const client = open(CLIENT_IDENTITY, new CountingStorage(), { integrityLimit: 3 });
  for (let i = 0; i < 3; i++) {
    const sent = client.protectRequest(request('echo'));
    const received = server.unprotectRequest(sent.message);
    assert.ok(received.ok);
    const forged = forger.protectResponse(response(sent.message, 'forged'), received.request);
    assert.equal(client.unprotectResponse(forged.message, sent.outgoing).ok, false);
  }
  assert.equal(client.integrityLimitReached, true);
  const sent = client.protectRequest(request('echo'));
  const received = server.unprotectRequest(sent.message);
  assert.ok(received.ok);
  const genuine = client.unprotectResponse(server.protectResponse(response(sent.message, 'genuine'), received.request).message, sent.outgoing);
  assert.ok(!genuine.ok);
  assert.match(genuine.reason, /integrity limit/);
});

test('over UDP: a forged-request stream reaches the server\'s limit; the client\'s next request starts the update and is answered on the new context', async () => {
  const stack = await kudosStack({ serverIntegrityLimit: 4 });
  const socket = createSocket('udp4');
  try {
    const before = await stack.client.request({ method: 'POST', uri: `${stack.base}/echo`, payload: 'before' });
    assert.equal(before.payload.toString(), 'before');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const { port } = stack.server.address();
    for (let i = 0; i < 4; i++) {
      const forged = { ...forgedRequest(), type: MessageType.CON, messageId: 4000 + i };
      const answered = new Promise<Buffer>((resolve) => socket.once('message', resolve));
      socket.send(encodeMessage(forged), port, '127.0.0.1');
      await answered;
    }
    assert.equal(stack.serverSession.integrityLimitReached, true);
    const after = await stack.client.request({ method: 'POST', uri: `${stack.base}/echo`, payload: 'after' });
    assert.equal(after.payload.toString(), 'after', 'the request went through once the update was done');
    assert.ok(stack.serverEvents.some((e) => e.type === 'completed'), 'the server completed an update');
    assert.ok(sameContext(stack.clientSession, stack.serverSession));
    assert.equal(stack.serverSession.failedDecryptions, 0);
    assert.deepEqual(stack.log.filter((l) => l.startsWith('echo')), ['echo before', 'echo after'], 'the refused request never reached the handler');
    const next = await stack.client.request({ method: 'POST', uri: `${stack.base}/echo`, payload: 'next' });
    assert.equal(next.payload.toString(), 'next');
    assert.deepEqual(stack.ledger.reused, []);
  } finally {
    socket.close();
    await stack.close();
  }
});
