/**
 * Issue 17 item 8: the Echo challenge of RFC 8613 Appendix B.1.2 (and RFC 9175 §2.3) under replay.
 * Echo values are stateless — a timestamp and a MAC bound to the recipient — so any recent one
 * verifies: an attacker replaying a captured request, each replay answered with a new challenge,
 * no longer invalidates the value the honest client is about to echo, and neither do concurrent
 * requests of the client itself. A value is bound to its recipient and context, and ages out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, getOption, setOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { securedSender, withEchoRetry } from '../src/client/security.js';
import { OscoreSecurityContext, VolatileSequence, type SecurityContextInput } from '../src/oscore/security-context.js';
import { OscoreServerSecurity, type OscoreServerOptions } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import type { PeerAddress } from '../src/transport/transport.js';
import { FakeNetwork } from './support/network.js';

const SERVER: PeerAddress = { address: '10.0.0.1', port: 5683 };
const CLIENT: PeerAddress = { address: '10.0.0.2', port: 40000 };
const OTHER_CLIENT: PeerAddress = { address: '10.0.0.3', port: 40000 };
const ATTACKER: PeerAddress = { address: '10.0.0.66', port: 40000 };
const hex = (s: string): Uint8Array => Buffer.from(s, 'hex');

/** The OSCORE test specification's contexts: A/B without, C/D with an ID Context; same kids. */
const COMMON = { masterSecret: hex('0102030405060708090a0b0c0d0e0f10'), masterSalt: hex('9e7ca92223786340') };
const CONTEXT_A: SecurityContextInput = { ...COMMON, senderId: hex(''), recipientIds: [hex('01')], name: 'server' };
const CONTEXT_B: SecurityContextInput = { ...COMMON, senderId: hex('01'), recipientIds: [hex('')], name: 'client-a' };
const ID_CONTEXT = hex('37cbf3210017a2d3');
const CONTEXT_C: SecurityContextInput = { ...CONTEXT_A, idContext: ID_CONTEXT };
const CONTEXT_D: SecurityContextInput = { ...CONTEXT_B, idContext: ID_CONTEXT, name: 'client-c' };

function setup(options: { restarted?: boolean; server?: OscoreServerOptions } = {}) {
  const net = new FakeNetwork();
  const contexts = [CONTEXT_B, CONTEXT_D].map((c) => new OscoreSecurityContext(c, new VolatileSequence(500), options.restarted ?? true));
  const security = new OscoreServerSecurity(contexts, { now: () => net.clock.now(), ...options.server });
  const server = new CoapServer(net.endpoint(SERVER, {}, 1), { security });
  const executed: string[] = [];
  server.resource('/act', {
    POST: (request) => {
      executed.push(decodeString(request.payload));
      return { code: ResponseCode.Changed, payload: `done ${decodeString(request.payload)}` };
    },
  });
  /** A client of context A (or C) at `address` whose Sender Sequence Number continues at `from`. */
  const client = (address: PeerAddress, input: SecurityContextInput = CONTEXT_A, from = 100) => {
    const endpoint = net.endpoint(address, { nstart: 16 }, address.port + address.address.length);
    const oscore = new OscoreClientSecurity(new OscoreSecurityContext(input, new VolatileSequence(from)));
    return { endpoint, oscore, once: securedSender(endpoint, SERVER, oscore), send: withEchoRetry(securedSender(endpoint, SERVER, oscore)) };
  };
  return { net, server, executed, client };
}

const post = (body: string, echo?: Uint8Array): CoapMessage => {
  const message: CoapMessage = {
    type: MessageType.CON,
    code: Method.POST,
    messageId: 0,
    token: EMPTY_BYTES,
    options: [{ number: OptionNumber.UriPath, value: encodeString('act') }],
    payload: encodeString(body),
  };
  if (echo) setOption(message, OptionNumber.Echo, echo);
  return message;
};

/** What an attacker recorded before the restart: one protected request, replayed as bytes. */
function capturedRequest(): CoapMessage {
  const old = new OscoreClientSecurity(new OscoreSecurityContext(CONTEXT_A, new VolatileSequence(7)));
  const { message } = old.protect(post('captured'));
  return { ...message, type: MessageType.CON, token: Uint8Array.of(0xaa, 0xbb) };
}

/** Replays `request` every `everyMs` from the attacker's address, each with a new Message ID (past deduplication). */
function replayEvery(net: FakeNetwork, request: CoapMessage, everyMs: number): () => void {
  let stopped = false;
  let messageId = 0;
  const tick = (): void => {
    if (stopped) return;
    net.carry(ATTACKER, SERVER, encodeMessage({ ...request, messageId: messageId++ & 0xffff }));
    net.clock.schedule(everyMs, tick);
  };
  tick();
  return () => (stopped = true);
}

/** Server datagrams that are protected 4.01 challenges: the only server messages with a Partial IV here. */
const challengesTo = (net: FakeNetwork, to: PeerAddress): number =>
  net.log.filter((d) => d.from.address === SERVER.address && d.to.address === to.address && ((getOption(d.message, OptionNumber.Oscore)?.[0] ?? 0) & 0x07) > 0).length;

test('an attacker replaying a captured request every 2 ms does not keep the client out after a restart', async () => {
  const s = setup();
  const stop = replayEvery(s.net, capturedRequest(), 2);
  const honest = s.client(CLIENT);
  // The client's path is 5 ms each way, so dozens of replays (and challenges) fall between a
  // challenge and the request echoing it.
  s.net.delay = (d) => (d.from.address === CLIENT.address || d.to.address === CLIENT.address ? 4 : 0);
  for (let i = 0; i < 5; i++) {
    const response = await s.net.until(honest.send(post(`honest ${i}`)), 60_000);
    assert.equal(response.message.code, ResponseCode.Changed, `request ${i}: ${decodeString(response.message.payload)}`);
    assert.equal(decodeString(response.message.payload), `done honest ${i}`);
  }
  stop();
  assert.deepEqual(s.executed, ['honest 0', 'honest 1', 'honest 2', 'honest 3', 'honest 4'], 'the replayed request is never executed');
  assert.ok(challengesTo(s.net, ATTACKER) > 10, 'the replays were answered with challenges meanwhile');
});

test('concurrent requests of one client after a restart all complete, whatever order their Echo retries arrive in', async () => {
  const s = setup();
  const honest = s.client(CLIENT);
  // Each datagram of the client's path gets its own delay (0–15 ms), so the retries reorder.
  let turn = 0;
  s.net.delay = (d) => (d.from.address === CLIENT.address ? (turn++ * 7) % 16 : 0);
  const all = Array.from({ length: 8 }, (_, i) => honest.send(post(`c${i}`)));
  const responses = await s.net.until(Promise.all(all), 60_000);
  assert.deepEqual(responses.map((r) => decodeString(r.message.payload)), Array.from({ length: 8 }, (_, i) => `done c${i}`));
  assert.deepEqual([...s.executed].sort(), Array.from({ length: 8 }, (_, i) => `c${i}`));
});

/** The Echo value of the challenge that answers `client`'s next request, read through its own verification. */
async function echoFromChallenge(s: ReturnType<typeof setup>, client: ReturnType<ReturnType<typeof setup>['client']>): Promise<Uint8Array> {
  const challenge = await s.net.until(client.once(post('probe')));
  assert.equal(challenge.message.code, ResponseCode.Unauthorized);
  return getOption(challenge.message, OptionNumber.Echo)!;
}

test('an Echo value is bound to its recipient and context: moved to another, it is challenged again', async () => {
  const s = setup();
  const a = s.client(CLIENT, CONTEXT_A);
  const c = s.client(OTHER_CLIENT, CONTEXT_C);
  const echoForA = await echoFromChallenge(s, a);
  // Context D has the same kid as B, only its ID Context differs.
  const moved = await s.net.until(c.once(post('moved', echoForA)));
  assert.equal(moved.message.code, ResponseCode.Unauthorized);
  assert.ok(getOption(moved.message, OptionNumber.Echo), 'a new challenge');
  const own = await s.net.until(a.once(post('own', echoForA)));
  assert.equal(own.message.code, ResponseCode.Changed, 'the value verifies for the recipient it was issued to');
  assert.deepEqual(s.executed, ['own']);
});

test('an Echo value older than echoLifetimeMs is challenged again; any recent one is accepted', async () => {
  const s = setup({ server: { echoLifetimeMs: 10_000 } });
  const a = s.client(CLIENT);
  const first = await echoFromChallenge(s, a);
  const second = await echoFromChallenge(s, a);
  assert.notDeepEqual(first, second);
  await s.net.run(11_000);
  const stale = await s.net.until(a.once(post('stale', first)));
  assert.equal(stale.message.code, ResponseCode.Unauthorized, 'stale');
  const recent = await echoFromChallenge(s, a);
  const accepted = await s.net.until(a.once(post('fresh', recent)));
  assert.equal(accepted.message.code, ResponseCode.Changed);
  assert.deepEqual(s.executed, ['fresh']);
});

test('a request whose Partial IV fell below the window is challenged (never executed unasked); a seen one is a replay', async () => {
  const s = setup({ restarted: false });
  const a = s.client(CLIENT);
  // A request protected now and delivered only after 40 later ones: below the 32-wide window.
  const late = a.oscore.protect(post('late'));
  for (let i = 0; i < 40; i++) await s.net.until(a.send(post(`n${i}`)));
  const lateResponse = await s.net.until(a.endpoint.request(late.message, SERVER));
  const verified = late.verify(lateResponse.message, false) as CoapMessage;
  assert.equal(verified.code, ResponseCode.Unauthorized);
  assert.ok(getOption(verified, OptionNumber.Echo), 'a protected challenge with Echo');
  assert.ok(!s.executed.includes('late'));
  // The client repeats it with a fresh Partial IV, as withEchoRetry does: executed once.
  const repeated = await s.net.until(a.send(post('late', getOption(verified, OptionNumber.Echo))));
  assert.equal(decodeString(repeated.message.payload), 'done late');
  assert.equal(s.executed.filter((e) => e === 'late').length, 1);
  // A copy of an executed request that passed deduplication (another Message ID) is a replay for certain.
  const copy = a.oscore.protect(post('copy'));
  await s.net.until(a.endpoint.request({ ...copy.message }, SERVER));
  const replayed = await s.net.until(a.endpoint.request({ ...copy.message, options: copy.message.options.slice() }, SERVER));
  assert.equal(decodeString(replayed.message.payload), 'Replay detected');
  assert.equal(s.executed.filter((e) => e === 'copy').length, 1);
});

test('challenges for requests below the window are bounded per recipient and second by its own traffic; beyond, a 4.01 that claims no replay', async () => {
  const s = setup({ restarted: false, server: { staleChallengesPerSecond: 3 } });
  const a = s.client(CLIENT);
  const old = Array.from({ length: 45 }, (_, i) => a.oscore.protect(post(`old ${i}`)).message);
  // 40 requests accepted this second: the budget is 40 (the configured 3 is the floor).
  for (let i = 0; i < 40; i++) await s.net.until(a.send(post(`n${i}`)));
  const answers: string[] = [];
  for (const message of old) {
    const r = await s.net.until(a.endpoint.request({ ...message, options: message.options.slice() }, SERVER));
    answers.push(getOption(r.message, OptionNumber.Oscore) ? 'challenge' : decodeString(r.message.payload));
  }
  assert.deepEqual(answers, [...Array<string>(40).fill('challenge'), ...Array<string>(5).fill('Replay window exceeded')]);
  await s.net.run(1000);
  const later = await s.net.until(a.endpoint.request({ ...old[44]!, options: old[44]!.options.slice() }, SERVER));
  assert.ok(getOption(later.message, OptionNumber.Oscore), 'a new second, a new budget');
  // An idle recipient's budget is the configured floor.
  await s.net.run(2000);
  const idle: string[] = [];
  for (const message of old.slice(0, 5)) {
    const r = await s.net.until(a.endpoint.request({ ...message, options: message.options.slice() }, SERVER));
    idle.push(getOption(r.message, OptionNumber.Oscore) ? 'challenge' : decodeString(r.message.payload));
  }
  assert.deepEqual(idle, ['challenge', 'challenge', 'challenge', 'Replay window exceeded', 'Replay window exceeded']);
});
