/**
 * Request freshness with Echo (RFC 9175 §2.3–§2.4) against the delay attack (seed 002 §2.1.1.2,
 * "Delaying", REQUIRED): a resource with `freshness` refuses an actuation an intermediary held back
 * longer than maxAgeMs; without the policy the same delay goes undetected.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, getOption, setOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { PLAIN, securedSender, withEchoRetry, type MessageSecurity } from '../src/client/security.js';
import { VALVE_FRESHNESS_MS, addDemoResources } from '../src/demo/resources.js';
import type { EndpointContext } from '../src/exchange/context.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { ECHO_FRESHNESS_SIZE, EchoFreshness, requesterIdentity } from '../src/server/freshness.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork, type Delivery } from './support/network.js';

const S = { address: '10.0.0.1', port: 5683 };
const C = { address: '10.0.0.2', port: 40000 };
const C2 = { address: '10.0.0.3', port: 40000 };
const HOLD_MS = VALVE_FRESHNESS_MS + 5_000;

const ctx = (peerKey: string, extra: Partial<EndpointContext> = {}): EndpointContext => ({ peer: { address: peerKey.split(':')[0]!, port: 1 }, peerKey, scheme: 'coap', ...extra });

const put = (path: string, level: string, echo?: Uint8Array): CoapMessage => {
  const m: CoapMessage = { type: MessageType.CON, code: Method.PUT, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.UriPath, value: encodeString(path) }], payload: encodeString(level) };
  if (echo) setOption(m, OptionNumber.Echo, echo);
  return m;
};
const get = (path: string): CoapMessage => ({ type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.UriPath, value: encodeString(path) }], payload: EMPTY_BYTES });

function pair() {
  const masterSecret = Buffer.from('freshness secret');
  return {
    client: new OscoreSecurityContext({ masterSecret, senderId: Buffer.from([1]), recipientIds: [Buffer.from([2])], name: 'server' }, new VolatileSequence()),
    server: new OscoreSecurityContext({ masterSecret, senderId: Buffer.from([2]), recipientIds: [Buffer.from([1])], name: 'valve-operator' }, new VolatileSequence()),
  };
}

/** The demo /valve (freshness policy) and /valve-plain, the same actuator without it. */
function world(options: { oscore?: boolean } = {}) {
  const net = new FakeNetwork();
  const contexts = options.oscore ? pair() : undefined;
  const server = new CoapServer(net.endpoint(S, {}, 1), contexts ? { security: new OscoreServerSecurity([contexts.server]) } : {});
  addDemoResources(server, { tick: false });
  let plain = '0';
  const executed: string[] = [];
  server.resource('/valve-plain', {
    GET: () => ({ code: ResponseCode.Content, payload: plain }),
    PUT: (r) => ((plain = r.text()), executed.push(plain), { code: ResponseCode.Changed }),
  });
  const security: MessageSecurity = contexts ? new OscoreClientSecurity(contexts.client) : PLAIN;
  const client = net.endpoint(C, {}, 2);
  const raw = securedSender(client, S, security);
  const send = withEchoRetry(raw);
  const read = async (path: string) => decodeString((await net.until(send(get(path)))).message.payload);
  const requests = () => net.log.filter((d) => d.to.port === S.port && d.message.code !== 0);
  return { net, server, send, raw, read, requests, executed, security };
}

test('EchoFreshness: fresh within maxAgeMs, stale after, bound to the requester, MAC-checked', () => {
  let now = 1_000;
  const f = new EchoFreshness(() => now);
  const alice = ctx('10.0.0.2:40000');
  const echo = f.issue(alice);
  assert.equal(echo.length, ECHO_FRESHNESS_SIZE);
  assert.ok(echo.length >= 1 && echo.length <= 40, 'RFC 9175 §2.2.1: 1–40 bytes');
  assert.equal(f.verify(undefined, alice, 100), 'missing');
  assert.equal(f.verify(echo, alice, 100), 'fresh');
  now += 100;
  assert.equal(f.verify(echo, alice, 100), 'fresh', 'age == maxAgeMs is still fresh');
  now += 1;
  assert.equal(f.verify(echo, alice, 100), 'stale');
  now = 1_000;
  assert.equal(f.verify(echo, ctx('10.0.0.3:40000'), 100), 'invalid', 'issued for another address');
  for (let i = 0; i < echo.length; i++) {
    const altered = Uint8Array.from(echo);
    altered[i]! ^= 0x01;
    assert.equal(f.verify(altered, alice, 100), 'invalid', `bit flipped in byte ${i}`);
  }
  assert.equal(f.verify(echo.subarray(0, 15), alice, 100), 'invalid', 'truncated');
  assert.equal(new EchoFreshness(() => now).verify(echo, alice, 100), 'invalid', 'another server instance (a restart) has another key');
  // A timestamp from the future (only possible with the key) is not fresh either.
  now = 500;
  assert.equal(f.verify(echo, alice, 10_000), 'stale');
});

test('requester identity: the OSCORE peer, else the DTLS identity, else the address', () => {
  const dtls = { kind: 'dtls' as const, identity: 'client-1', mode: 'psk' as const, cipherSuite: 'x' };
  const oscore = [{ peer: 'proxy', kid: '05' }, { peer: 'operator', kid: '01' }];
  assert.equal(requesterIdentity(ctx('a:1', { security: dtls, oscore })), 'oscore\0operator', 'the end-to-end (innermost) layer');
  assert.equal(requesterIdentity(ctx('a:1', { security: dtls })), 'dtls\0psk\0client-1');
  assert.equal(requesterIdentity(ctx('a:1')), 'addr\0a:1');
});

test('PUT /valve: 4.01 with Echo, repeated automatically with it, then 2.04; GET needs no Echo', async () => {
  const w = world();
  const r = await w.net.until(w.send(put('valve', '7')));
  assert.equal(r.message.code, ResponseCode.Changed);
  const [first, second, ...rest] = w.requests();
  assert.equal(rest.length, 0);
  assert.equal(getOption(first!.message, OptionNumber.Echo), undefined);
  const challenge = w.net.log.find((d) => d.to.port === C.port && d.message.code === ResponseCode.Unauthorized)!;
  assert.equal(getUint(challenge.message, OptionNumber.MaxAge), 0, 'the challenge is not cached');
  assert.deepEqual(getOption(second!.message, OptionNumber.Echo), getOption(challenge.message, OptionNumber.Echo));
  assert.equal(await w.read('valve'), '7');
  assert.equal(w.requests().filter((d) => d.message.code === Method.GET).length, 1, 'GET is not challenged');
  // The policy runs after validation: a bad level still gets its 4.00, after the Echo round trip.
  assert.equal((await w.net.until(w.send(put('valve', '42')))).message.code, ResponseCode.BadRequest);
  assert.equal(await w.read('valve'), '7');
});

test('a forged or altered Echo is refused with 4.01 and a new Echo; the valve is unchanged', async () => {
  const w = world();
  const first = await w.net.until(w.raw(put('valve', '3')));
  assert.equal(first.message.code, ResponseCode.Unauthorized);
  const echo = getOption(first.message, OptionNumber.Echo)!;
  const altered = Uint8Array.from(echo);
  altered[echo.length - 1]! ^= 0x80;
  const forgedTimestamp = Uint8Array.from(echo);
  forgedTimestamp[7]! ^= 0x01;
  for (const bad of [altered, forgedTimestamp, Uint8Array.of(1, 2, 3, 4), new Uint8Array(16)]) {
    const r = await w.net.until(w.raw(put('valve', '9', bad)));
    assert.equal(r.message.code, ResponseCode.Unauthorized);
    assert.ok(getOption(r.message, OptionNumber.Echo), 'a new challenge');
    assert.match(decodeString(r.message.payload), /invalid/);
  }
  assert.equal(await w.read('valve'), '0');
  // The genuine value still works.
  assert.equal((await w.net.until(w.raw(put('valve', '3', echo)))).message.code, ResponseCode.Changed);
  assert.equal(await w.read('valve'), '3');
});

test('an Echo issued for another client is refused', async () => {
  const w = world();
  const other = securedSender(w.net.endpoint(C2, {}, 3), S, PLAIN);
  const theirs = getOption((await w.net.until(other(put('valve', '1')))).message, OptionNumber.Echo)!;
  const r = await w.net.until(w.raw(put('valve', '5', theirs)));
  assert.equal(r.message.code, ResponseCode.Unauthorized);
  assert.equal(await w.read('valve'), '0');
  assert.equal((await w.net.until(other(put('valve', '1', theirs)))).message.code, ResponseCode.Changed, 'valid for the client it was issued to');
});

/** Holds every transmission of the n-th distinct request to the server by `ms` (retransmissions too). */
function holdRequest(w: ReturnType<typeof world>, n: number, ms: number): void {
  const ids: number[] = [];
  w.net.delay = (d: Omit<Delivery, 'dropped'>) => {
    if (d.to.port !== S.port || d.message.code === 0 || d.message.code >= 32) return 0;
    if (!ids.includes(d.message.messageId)) ids.push(d.message.messageId);
    return ids.indexOf(d.message.messageId) === n ? ms : 0;
  };
}

test('delay attack on PUT /valve: the held Echo-carrying request is refused (4.01, new Echo), the valve unchanged', async () => {
  const w = world();
  holdRequest(w, 1, HOLD_MS); // the second request: the one carrying the Echo value
  const started = w.net.clock.now();
  const r = await w.net.until(w.send(put('valve', '8')));
  assert.ok(w.net.clock.now() - started >= HOLD_MS, 'the request was held');
  assert.equal(r.message.code, ResponseCode.Unauthorized);
  assert.match(decodeString(r.message.payload), /stale/);
  const echoes = w.net.log.filter((d) => d.to.port === C.port && d.message.code === ResponseCode.Unauthorized).map((d) => Buffer.from(getOption(d.message, OptionNumber.Echo)!).toString('hex'));
  assert.equal(new Set(echoes).size, 2, 'the refusal carries a new Echo value');
  assert.equal(getOption(w.requests()[1]!.message, OptionNumber.Echo)?.length, ECHO_FRESHNESS_SIZE);
  w.net.delay = () => 0;
  assert.equal(await w.read('valve'), '0', 'the delayed actuation was not executed');
});

test('the same delay against a resource without the policy goes undetected: the actuation is executed late', async () => {
  const w = world();
  holdRequest(w, 0, HOLD_MS);
  const started = w.net.clock.now();
  const r = await w.net.until(w.send(put('valve-plain', '8')));
  assert.ok(w.net.clock.now() - started >= HOLD_MS, 'the request was held');
  assert.equal(r.message.code, ResponseCode.Changed);
  assert.deepEqual(w.executed, ['8']);
  w.net.delay = () => 0;
  assert.equal(await w.read('valve-plain'), '8');
});

test('OSCORE end to end: the Echo round trip runs inside the ciphertext; the delayed request is refused', async () => {
  const ok = world({ oscore: true });
  assert.equal((await ok.net.until(ok.send(put('valve', '6')))).message.code, ResponseCode.Changed);
  assert.equal(await ok.read('valve'), '6');
  for (const d of ok.net.log) {
    assert.equal(getOption(d.message, OptionNumber.Echo), undefined, 'no outer Echo: it is class E');
    if (d.message.code !== 0) assert.ok(getOption(d.message, OptionNumber.Oscore) !== undefined, 'every request and response is protected');
  }
  assert.equal(ok.requests().filter((d) => d.message.code !== Method.GET).length >= 2, true, 'challenge and repetition');

  const w = world({ oscore: true });
  holdRequest(w, 1, HOLD_MS);
  const r = await w.net.until(w.send(put('valve', '9')));
  assert.equal(r.message.code, ResponseCode.Unauthorized);
  assert.ok(getOption(r.message, OptionNumber.Echo), 'a new Echo value, inside the protected response');
  assert.match(decodeString(r.message.payload), /stale/);
  for (const d of w.net.log) assert.equal(getOption(d.message, OptionNumber.Echo), undefined);
  w.net.delay = () => 0;
  assert.equal(await w.read('valve'), '0');

  // Without the policy, OSCORE alone does not detect the delay (the seed: Echo is what mitigates it).
  const p = world({ oscore: true });
  holdRequest(p, 0, HOLD_MS);
  assert.equal((await p.net.until(p.send(put('valve-plain', '4')))).message.code, ResponseCode.Changed);
  assert.deepEqual(p.executed, ['4']);
});

function getUint(message: CoapMessage, number: number): number | undefined {
  const v = getOption(message, number);
  return v === undefined ? undefined : v.reduce((a, b) => a * 256 + b, 0);
}
