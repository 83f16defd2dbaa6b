/**
 * Observe with OSCORE (RFC 7641 with RFC 8613 §4.1.3.5, §8.4.2; Appendix B.1.2): a registration
 * answered by an error ends the observation with that error instead of waiting forever, and an
 * Echo challenge from a restarted server is answered by registering again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeString, getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { Observation } from '../src/client/observe.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { VerificationError } from '../src/client/security.js';
import { OscoreSecurityContext, VolatileSequence, type SecurityContextInput } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { decodeOscoreOption } from '../src/oscore/option.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';

const SERVER = { address: '10.0.0.1', port: 5683 };
const CLIENT = { address: '10.0.0.2', port: 40000 };
const hex = (s: string): Uint8Array => Buffer.from(s, 'hex');
const COMMON = { masterSecret: hex('0102030405060708090a0b0c0d0e0f10'), masterSalt: hex('9e7ca92223786340') };
const CLIENT_CONTEXT: SecurityContextInput = { ...COMMON, senderId: hex('01'), recipientIds: [hex('02')], name: 'server' };
const SERVER_CONTEXT: SecurityContextInput = { ...COMMON, senderId: hex('02'), recipientIds: [hex('01')], name: 'client' };

const template = (): CoapMessage => ({
  type: MessageType.CON,
  code: Method.GET,
  messageId: 0,
  token: EMPTY_BYTES,
  options: [{ number: OptionNumber.UriPath, value: encodeString('counter') }],
  payload: EMPTY_BYTES,
});

function startServer(net: FakeNetwork, options: { oscore?: { restarted: boolean; sequenceFrom: number; rederivation?: boolean } | undefined; seed?: number }) {
  const context = { ...SERVER_CONTEXT, rederivation: options.oscore?.rederivation ?? false };
  const security = options.oscore ? new OscoreServerSecurity([new OscoreSecurityContext(context, new VolatileSequence(options.oscore.sequenceFrom), options.oscore.restarted)]) : undefined;
  const server = new CoapServer(net.endpoint(SERVER, {}, options.seed ?? 1), security ? { security } : {});
  let state = 0;
  server.resource('/counter', { GET: () => ({ code: ResponseCode.Content, maxAge: 2, payload: `state ${state}` }) }, { observable: true });
  return {
    server,
    change: () => {
      state++;
      server.changed('/counter');
    },
  };
}

function observe(net: FakeNetwork, context: SecurityContextInput = CLIENT_CONTEXT) {
  const client = net.endpoint(CLIENT, {}, 2);
  const security = new OscoreClientSecurity(new OscoreSecurityContext(context, new VolatileSequence()));
  return new Observation(client, SERVER, template(), { maxBodySize: 1 << 20, maxRestarts: 3 }, { reregisterDelay: () => 0 }, security);
}

const registrations = (net: FakeNetwork) => net.log.filter((d) => d.to.address === SERVER.address && getOption(d.message, OptionNumber.Oscore) !== undefined);

test('an OSCORE registration answered by an unprotected 4.01 "Security context not found" ends the observation with that error', async () => {
  const net = new FakeNetwork();
  startServer(net, { oscore: { restarted: false, sequenceFrom: 0 } });
  const observation = observe(net, { ...CLIENT_CONTEXT, senderId: hex('0f') });
  const started = net.clock.now();
  await assert.rejects(
    net.until(observation.next(), 5_000),
    (e: unknown) => e instanceof VerificationError && /unprotected 4\.01 Unauthorized: "Security context not found"/.test(e.message),
  );
  assert.ok(net.clock.now() - started < 100, 'at once, not after a timeout');
  assert.equal(registrations(net).length, 1, 'nothing is retried');
});

test('an OSCORE registration answered by a server without OSCORE (4.02) ends the observation with that error', async () => {
  const net = new FakeNetwork();
  startServer(net, {});
  const observation = observe(net);
  await assert.rejects(net.until(observation.next(), 5_000), (e: unknown) => e instanceof VerificationError && /unprotected 4\.02 Bad Option/.test(e.message));
});

test('an unprotected 5.04 from a proxy (or any forged plain error) to the registration ends it; the same to a later notification is only dropped', async () => {
  const net = new FakeNetwork();
  const { change } = startServer(net, { oscore: { restarted: false, sequenceFrom: 0 } });
  const observation = observe(net);
  const first = await net.until(observation.next(), 5_000);
  assert.equal(first.value!.text(), 'state 0');
  // A plain 5.04 with the observation's token: not a notification of this resource (§8.4.2), dropped.
  const token = registrations(net)[0]!.message.token;
  net.carry(SERVER, CLIENT, encodeMessage({ type: MessageType.NON, code: ResponseCode.GatewayTimeout, messageId: 0x4444, token, options: [], payload: EMPTY_BYTES }));
  await net.run(5);
  change();
  const second = await net.until(observation.next(), 5_000);
  assert.equal(second.value!.text(), 'state 1', 'the observation goes on');

  // A proxy answering the registration itself with 5.04.
  const proxied = new FakeNetwork();
  const proxy = proxied.endpoint(SERVER, {}, 3);
  proxy.setRequestHandler((_, exchange) => exchange.respond({ type: MessageType.ACK, code: ResponseCode.GatewayTimeout, messageId: 0, token: EMPTY_BYTES, options: [], payload: EMPTY_BYTES }));
  const refused = observe(proxied);
  await assert.rejects(proxied.until(refused.next(), 5_000), (e: unknown) => e instanceof VerificationError && /unprotected 5\.04 Gateway Timeout/.test(e.message));
});

test('an OSCORE observation recovers through Echo after a server restart (RFC 8613 Appendix B.1.2)', async () => {
  const net = new FakeNetwork();
  const before = startServer(net, { oscore: { restarted: false, sequenceFrom: 0 } });
  const observation = observe(net);
  assert.equal((await net.until(observation.next(), 5_000)).value!.text(), 'state 0');
  before.change();
  assert.equal((await net.until(observation.next(), 5_000)).value!.text(), 'state 1');

  // The server restarts: its observers are gone, its replay window uninitialised; its Sender
  // Sequence Number resumes above anything used before (Appendix B.1.1).
  await before.server.close();
  const after = startServer(net, { oscore: { restarted: true, sequenceFrom: 100 }, seed: 5 });
  const sentBefore = registrations(net).length;
  // Max-Age (2 s) runs out without a notification: the client registers again (RFC 7641 §3.3.1),
  // gets 4.01 with Echo, and registers once more with that Echo.
  const next = observation.next();
  await net.run(2_500);
  const retries = registrations(net).slice(sentBefore);
  assert.equal(retries.length, 2, 'the re-registration, then the same with Echo');
  const challenge = net.log.filter((d) => d.from.address === SERVER.address).find((d) => d.at > retries[0]!.at && d.at < retries[1]!.at);
  assert.equal(challenge?.message.code, ResponseCode.Changed, 'the challenge is a protected 4.01 (outer 2.04)');
  assert.deepEqual([...retries[1]!.message.token], [...retries[0]!.message.token], 'the same token (§3.3.1)');
  assert.equal((await net.until(next, 5_000)).value!.text(), 'state 0', "the restarted server's first notification");
  after.change();
  assert.equal((await net.until(observation.next(), 5_000)).value!.text(), 'state 1');
  assert.equal(observation.registered, true);
  await net.until(observation.cancel(), 5_000);
});

test('an OSCORE observation registering with a restarted server answers its Echo challenge at once', async () => {
  const net = new FakeNetwork();
  startServer(net, { oscore: { restarted: true, sequenceFrom: 50 } });
  const observation = observe(net);
  assert.equal((await net.until(observation.next(), 5_000)).value!.text(), 'state 0');
  assert.equal(registrations(net).length, 2);
  await net.until(observation.cancel(), 5_000);
});

test('an OSCORE observation completes Appendix B.2 started by a restarted server (response #1 with R2), then registers under the third context', async () => {
  const net = new FakeNetwork();
  const { change } = startServer(net, { oscore: { restarted: true, sequenceFrom: 0, rederivation: true } });
  const observation = observe(net, { ...CLIENT_CONTEXT, rederivation: true });
  assert.equal((await net.until(observation.next(), 5_000)).value!.text(), 'state 0');
  const [first, second] = registrations(net).map((d) => decodeOscoreOption(getOption(d.message, OptionNumber.Oscore)!));
  assert.equal(first!.kidContext, undefined, 'an ordinary registration');
  assert.equal(second!.kidContext?.length, 17, "request #2: R2 || R3 wrapped in a CBOR bstr as 'kid context'");
  change();
  assert.equal((await net.until(observation.next(), 5_000)).value!.text(), 'state 1');
  await net.until(observation.cancel(), 5_000);
});
