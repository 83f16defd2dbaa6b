/**
 * Group requests through a proxy (draft-ietf-core-groupcomm-proxy) in lockstep: client and proxy on
 * the fake network, the group leg a fake multicast link whose three members run Group OSCORE. The
 * options (§2, §3, §7.3), Reply-From's CRIs, the proxy's checks in their order (§5.2.1: 4.01, then
 * 4.00 with Multicast-Timeout 0), relaying "as they come" with Reply-From and a Partial IV of the
 * proxy's own per response, its bounds (timeout, responses, relays), the client's RST and the Early
 * Stop Request (§5.2.3), the reverse proxy's group mount (§6) and the cache with Group-ETag (§7).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { MessageType, createMessage, encodeString, encodeUint, getOption, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber, hasValidLength, isCritical, isNoCacheKey, isUnsafe, optionDefinition } from '../src/coap/options.js';
import { RouteSecurity, type RouteHop } from '../src/client/route.js';
import { PLAIN } from '../src/client/security.js';
import { parseCoapUri } from '../src/coap/uri.js';
import type { GroupSecurityContext } from '../src/group-oscore/context.js';
import { GroupManager, contextFromMemberFile } from '../src/group-oscore/manager.js';
import { protectGroupResponse, unprotectGroupRequest } from '../src/group-oscore/protect.js';
import { GroupClient, type GroupResponse } from '../src/group/group-client.js';
import { GroupProxyClient } from '../src/group/proxy-client.js';
import { ReplyFromError, decodeReplyFrom, encodeReplyFrom } from '../src/group/reply-from.js';
import { decodeOscoreOption, decodePartialIv } from '../src/oscore/option.js';
import { GroupResponseCache } from '../src/proxy/group-cache.js';
import { GroupForwardProxy, GroupReverseProxy, parseGroupMount } from '../src/proxy/group-proxy.js';
import { GroupRelay, groupAllowList, type GroupRelayOptions } from '../src/proxy/group-relay.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import type { DatagramHandler, DatagramTransport, PeerAddress } from '../src/transport/transport.js';
import { SeededRandom } from '../src/util/random.js';
import { FakeNetwork } from './support/network.js';
import { pair } from './support/oscore-layers.js';

const C = { address: '10.0.0.2', port: 40000 };
const P = { address: '10.0.0.3', port: 5683 };
const GROUP = 'coap://224.0.1.187:5683';
const SECRET = 'plaintext only the servers read';

// --- options and Reply-From ----------------------------------------------------------------------

test('the three options: numbers, properties from the number (RFC 7252 §5.4.6), format, length, OSCORE class U', () => {
  const mt = optionDefinition(OptionNumber.MulticastTimeout)!;
  assert.deepEqual([mt.number, mt.name, mt.format, mt.minLength, mt.maxLength, mt.repeatable, mt.oscoreClass], [2, 'Multicast-Timeout', 'uint', 0, 4, false, 'U']);
  assert.deepEqual([isCritical(2), isUnsafe(2)], [false, true], '§2: elective, unsafe');
  const rf = optionDefinition(OptionNumber.ReplyFrom)!;
  assert.deepEqual([rf.number, rf.name, rf.minLength, rf.maxLength, rf.repeatable, rf.oscoreClass], [248, 'Reply-From', 5, 1034, false, 'U']);
  assert.deepEqual([isCritical(248), isUnsafe(248)], [false, false], '§3: elective, safe');
  const ge = optionDefinition(OptionNumber.GroupETag)!;
  assert.deepEqual([ge.number, ge.name, ge.format, ge.minLength, ge.maxLength, ge.repeatable, ge.oscoreClass], [24, 'Group-ETag', 'opaque', 1, 8, true, 'U']);
  assert.deepEqual([isCritical(24), isUnsafe(24), isNoCacheKey(24)], [false, false, false], '§7.3: elective, safe, part of the cache key');
  assert.equal(hasValidLength(OptionNumber.ReplyFrom, 4), false, 'a 4-byte Reply-From is not one (5–1034)');
  assert.equal(hasValidLength(OptionNumber.GroupETag, 9), false);
});

test('Reply-From: a CRI with scheme and authority only (href §5.1), IPv4, IPv6 and host names, and the reverse proxy\'s reference', () => {
  // href Figure 3 (coap://198.51.100.1:61616/.well-known/core) without its path: [-1, [h'C6336401', 61616]].
  const v4 = encodeReplyFrom({ scheme: 'coap', host: '198.51.100.1', port: 61616 });
  assert.equal(Buffer.from(v4).toString('hex'), '82208244c633640119f0b0');
  assert.deepEqual(decodeReplyFrom(v4), { scheme: 'coap', host: '198.51.100.1', port: 61616 });
  const v6 = decodeReplyFrom(encodeReplyFrom({ scheme: 'coaps', host: '2001:db8::7', port: 5684 }));
  assert.deepEqual(v6, { scheme: 'coaps', host: '2001:db8::7', port: 5684 });
  assert.deepEqual(decodeReplyFrom(encodeReplyFrom({ scheme: 'coap+tcp', host: 'Node7.Example', port: 5683 })), { scheme: 'coap+tcp', host: 'node7.example', port: 5683 });
  const withReference = { scheme: 'coap', host: '192.0.2.1', port: 5683, reference: { host: '10.0.0.7', path: ['dev7'] } };
  assert.deepEqual(decodeReplyFrom(encodeReplyFrom(withReference)), withReference);
  // Not a Reply-From: a path in the first CRI, three items, an unknown scheme, garbage.
  for (const hex of ['8320824400000001811878' /* [-1,[ip],["x"]] */, '822082440000000182208244000000018220824400000001', '823863824400000001', 'ff']) {
    assert.throws(() => decodeReplyFrom(Buffer.from(hex, 'hex')), ReplyFromError, hex);
  }
  assert.throws(() => encodeReplyFrom({ scheme: 'coap', host: 'name.example', port: 1, reference: { host: '10.0.0.7', path: [] } }), ReplyFromError, '§3: no reference authority after a host name');
});

// --- the proxy ----------------------------------------------------------------------------------

/** A fake multicast link: each member unprotects the group request and answers after its delay. */
class FakeGroup implements DatagramTransport {
  readonly scheme = 'coap' as const;
  readonly sent: CoapMessage[] = [];
  #handler: DatagramHandler = () => {};

  constructor(
    private readonly net: FakeNetwork,
    readonly members: Array<{ name: string; address: PeerAddress; context: GroupSecurityContext; delays: number[] }>,
  ) {}

  setHandler(handler: DatagramHandler): void {
    this.#handler = handler;
  }
  localAddress(): PeerAddress {
    return { address: '10.0.0.3', port: 40100 };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  send(data: Uint8Array, peer: PeerAddress): void {
    const request = decodeMessage(data);
    if (request.code === 0 || request.code >= 64) return; // ACK, RST of responses
    this.sent.push(request);
    assert.equal(`${peer.address}:${peer.port}`, '224.0.1.187:5683');
    for (const member of this.members) {
      const opened = unprotectGroupRequest(request, () => member.context);
      const text = opened.ok ? Buffer.from(opened.message.payload).toString() : undefined;
      member.delays.forEach((delay, i) => {
        this.net.clock.schedule(delay, () => {
          const plain = createMessage({ type: MessageType.NON, code: ResponseCode.Content, messageId: 1000 + i, token: request.token, payload: Buffer.from(`${member.name} read: ${text ?? '(plain)'}`) });
          const response = opened.ok ? protectGroupResponse(plain, member.context, opened.binding, { freshPartialIv: i > 0 }) : plain;
          this.#handler(encodeMessage(response), member.address, undefined);
        });
      });
    }
  }
}

function setup(options: { delays?: number[][]; relay?: Partial<GroupRelayOptions>; allow?: string[]; net?: FakeNetwork } = {}) {
  const net = options.net ?? new FakeNetwork();
  const gm = GroupManager.create({ name: 'lights' });
  for (const name of ['client', 's1', 's2', 's3']) gm.addMember(name);
  const delays = options.delays ?? [[5], [10], [15]];
  const group = new FakeGroup(net, ['s1', 's2', 's3'].map((name, i) => ({ name, address: { address: `10.0.1.${i + 1}`, port: 5683 }, context: contextFromMemberFile(gm.memberFile(name)), delays: delays[i]! })));
  const alice = pair('alice', 1, 2);
  const mallory = pair('mallory', 3, 2);
  const server = new CoapServer(net.endpoint(P, {}, 3), { security: new OscoreServerSecurity([alice.receiver, mallory.receiver]) });
  const groups = new GroupClient({ transport: group, scheduler: net.clock, random: new SeededRandom(7) });
  const relay = new GroupRelay(server, { groups: () => groups, authorize: groupAllowList(options.allow ?? ['alice']), ...options.relay });
  new GroupForwardProxy(server, relay);
  const endpoint = net.endpoint(C, {}, 2);
  const client = (context = alice.sender) => new GroupProxyClient({ endpoint, proxy: { uri: `coap://${P.address}:${P.port}`, context } });
  const member = contextFromMemberFile(gm.memberFile('client'));
  return { net, group, relay, server, client, member, alice, mallory, endpoint };
}

/** A request for the group without Multicast-Timeout, built by hand inside the client–proxy layer; the proxy's answer, that layer removed. */
async function requestWithoutTimeout(t: ReturnType<typeof setup>, uri: string, hop: RouteHop): Promise<CoapMessage> {
  const route = new RouteSecurity(parseCoapUri(uri), [hop], PLAIN);
  const sent = route.protect(createMessage({ type: MessageType.CON, code: Method.GET, options: [{ number: OptionNumber.UriPath, value: encodeString('lights') }] }));
  const response = await t.net.until(t.endpoint.request(sent.message, P));
  const opened = sent.verify(response.message, false);
  assert.ok(!(opened instanceof Error), String(opened));
  return opened;
}

async function collect(net: FakeNetwork, stream: AsyncIterable<GroupResponse>, ms: number): Promise<GroupResponse[]> {
  const got: GroupResponse[] = [];
  const done = (async () => {
    for await (const r of stream) got.push(r);
  })();
  await net.until(done, ms);
  return got;
}

const text = (r: GroupResponse): string => `${r.origin.address} ${r.member?.name ?? '-'} ${r.code === ResponseCode.Content ? '2.05' : r.code} ${Buffer.from(r.payload).toString()}`;
const relayedToClient = (net: FakeNetwork): CoapMessage[] => net.log.filter((d) => d.from.address === P.address && d.to.address === C.address && d.message.code >= 64).map((d) => d.message);
const pivOf = (m: CoapMessage): number | undefined => {
  const piv = decodeOscoreOption(getOption(m, OptionNumber.Oscore)!).piv;
  return piv ? decodePartialIv(piv) : undefined;
};

test('§5.2.1/§5.4.1: one request, sent to the group once, every member\'s response relayed with Reply-From and verified end to end', async () => {
  const t = setup();
  const stream = t.client().request({ uri: `${GROUP}/lights`, method: Method.POST, payload: SECRET, timeout: 3000, security: { context: t.member } });
  const got = await collect(t.net, stream, 5000);
  assert.deepEqual(got.map(text).sort(), [1, 2, 3].map((i) => `10.0.1.${i} s${i} 2.05 s${i} read: ${SECRET}`));
  assert.equal(t.group.sent.length, 1, 'sent to the group once');
  const upstream = t.group.sent[0]!;
  assert.equal(upstream.type, MessageType.NON);
  assert.equal(Buffer.from(upstream.payload).indexOf(SECRET), -1, 'the proxy forwarded ciphertext');
  assert.deepEqual(upstream.options.map((o) => o.number), [OptionNumber.Oscore], 'only the Group OSCORE option: Multicast-Timeout and the addressing consumed (§5.2.1 step 4)');
  // On the client leg: the first response with the request's nonce, each later one with a Partial IV of the proxy's own (capable-proxies §2.5.1).
  const relayed = relayedToClient(t.net);
  assert.equal(relayed.length, 3);
  const pivs = relayed.map(pivOf);
  assert.equal(pivs[0], undefined);
  assert.equal(new Set(pivs.slice(1)).size, 2);
  for (const m of relayed) assert.deepEqual(m.options.map((o) => o.number), [OptionNumber.Oscore], 'Reply-From inside the client–proxy layer (§10.3)');
  assert.equal(t.relay.active, 0, 'the relay ended with the timeout');
});

test('§5.2.1 steps 2–3: a client not on the allow-list gets 4.01 (before the Multicast-Timeout check); one without Multicast-Timeout 4.00 with Multicast-Timeout 0', async () => {
  const t = setup();
  const refused = await collect(t.net, t.client(t.mallory.sender).request({ uri: `${GROUP}/lights`, timeout: 2000, security: { context: t.member } }), 3000);
  assert.deepEqual(refused.map((r) => [`${r.origin.address}:${r.origin.port}`, r.code, Buffer.from(r.payload).toString()]), [[`${P.address}:${P.port}`, ResponseCode.Unauthorized, `not allowed to have requests relayed to ${GROUP}`]]);
  assert.equal(t.group.sent.length, 0, 'nothing reached the group');

  const withoutTimeout = (context = t.alice.sender): Promise<CoapMessage> => requestWithoutTimeout(t, `${GROUP}/lights`, { uri: `coap://${P.address}:${P.port}`, context });
  const badRequest = await withoutTimeout();
  assert.equal(badRequest.code, ResponseCode.BadRequest);
  assert.deepEqual(getOption(badRequest, OptionNumber.MulticastTimeout), new Uint8Array(0), 'Multicast-Timeout 0: an empty value');
  assert.equal((await withoutTimeout(t.mallory.sender)).code, ResponseCode.Unauthorized, 'step 2 before step 3');
  assert.equal(t.group.sent.length, 0);
  assert.deepEqual([t.relay.stats.unauthorized, t.relay.stats.noTimeout], [2, 1]);
});

test('the timeout T\': a member answering after it is not relayed; the client learns nothing more', async () => {
  const t = setup({ delays: [[5], [1500], [10]] });
  const got = await collect(t.net, t.client().request({ uri: `${GROUP}/lights`, timeout: 3000, multicastTimeout: 1, security: { context: t.member } }), 5000);
  assert.deepEqual(got.map((r) => r.member?.name).sort(), ['s1', 's3']);
  assert.equal(relayedToClient(t.net).length, 2);
});

test('bounded: responses per relay (a member answering again and again), relays in progress (5.03)', async () => {
  const t = setup({ delays: [[5, 6, 7, 8, 9], [], []], relay: { maxResponses: 3, maxRelays: 1 } });
  const first = t.client().request({ uri: `${GROUP}/lights`, timeout: 3000, security: { context: t.member } });
  const second = t.client().request({ uri: `${GROUP}/lights`, timeout: 3000, security: { context: t.member } });
  const [a, b] = await Promise.all([collect(t.net, first, 5000), collect(t.net, second, 5000)]);
  const busy = [a, b].find((r) => r.length === 1 && r[0]!.code === ResponseCode.ServiceUnavailable);
  const served = [a, b].find((r) => r !== busy)!;
  assert.ok(busy, 'one of the two got 5.03');
  assert.equal(served.length, 3, 'three of s1\'s five answers');
});

test('§5.2.3: the client that stops listening answers the next relayed response with RST, which ends the relay', async () => {
  const t = setup({ delays: [[5], [200], [400]] });
  const stream = t.client().request({ uri: `${GROUP}/lights`, timeout: 3000, security: { context: t.member } });
  const got: GroupResponse[] = [];
  await t.net.until((async () => {
    for await (const r of stream) {
      got.push(r);
      stream.cancel();
    }
  })(), 1000);
  await t.net.run(300);
  assert.equal(got.length, 1);
  assert.equal(t.relay.active, 0, 'the RST to s2\'s relayed response ended the relay');
  assert.ok(t.net.log.some((d) => d.from.address === C.address && d.message.type === MessageType.RST));
  await t.net.run(300);
  assert.equal(relayedToClient(t.net).length, 2, 's3\'s answer was not relayed');
});

test('§5.1.3: an Early Stop Request (GET, Multicast-Timeout 0, the same token, no proxy options) ends the relay', async () => {
  const t = setup({ delays: [[5], [300], [600]], allow: [] });
  // Unauthenticated clients are allowed here, so the requests can be written by hand.
  const groups = new GroupClient({ transport: t.group, scheduler: t.net.clock, random: new SeededRandom(9) });
  const relay = new GroupRelay(t.server, { groups: () => groups, authorize: () => true });
  new GroupForwardProxy(t.server, relay);
  new GroupReverseProxy(t.server, relay, []);
  const raw = t.net.transport({ address: '10.0.0.9', port: 40009 });
  const heard: CoapMessage[] = [];
  raw.setHandler((data) => heard.push(decodeMessage(data)));
  const token = Uint8Array.of(1, 2, 3, 4);
  const options: CoapOption[] = [
    { number: OptionNumber.ProxyUri, value: encodeString(`${GROUP}/lights`) },
    { number: OptionNumber.MulticastTimeout, value: encodeUint(5) },
  ];
  raw.send(encodeMessage(createMessage({ type: MessageType.NON, code: Method.GET, messageId: 1, token, options })), P);
  await t.net.run(100);
  assert.equal(relay.active, 1);
  assert.equal(heard.filter((m) => m.code === ResponseCode.Content).length, 1, 's1 relayed');
  const replyFrom = getOption(heard[0]!, OptionNumber.ReplyFrom);
  assert.deepEqual(decodeReplyFrom(replyFrom!), { scheme: 'coap', host: '10.0.1.1', port: 5683 }, 'unprotected leg: Reply-From in clear');
  raw.send(encodeMessage(createMessage({ type: MessageType.NON, code: Method.GET, messageId: 2, token, options: [{ number: OptionNumber.MulticastTimeout, value: new Uint8Array(0) }] })), P);
  await t.net.run(1000);
  assert.equal(relay.active, 0, 'stopped');
  assert.equal(heard.filter((m) => m.code === ResponseCode.Content).length, 1, 'nothing relayed after the Early Stop');
});

test('§6 reverse proxy: a path prefix stands for the group; without Multicast-Timeout 4.00 reveals the proxy (§6.1)', async () => {
  const t = setup();
  assert.deepEqual(parseGroupMount('/lights=coap://224.0.1.187:5683'), { prefix: ['lights'], group: GROUP });
  assert.deepEqual(parseGroupMount('lights.example=coap://[ff05::fd]:5683'), { host: 'lights.example', group: 'coap://[ff05::fd]:5683' });
  assert.throws(() => parseGroupMount('/x=coap://192.0.2.1/'), /not a coap:\/\/ URI of an IP multicast group/);
  new GroupReverseProxy(t.server, t.relay, [parseGroupMount('/all-lights=coap://224.0.1.187:5683')]);
  const proxy = new GroupProxyClient({ endpoint: t.endpoint, proxy: { uri: `coap://${P.address}:${P.port}/all-lights`, kind: 'reverse', context: t.alice.sender } });
  // The group URI's authority is the proxy's: it stands in for the group.
  const got = await collect(t.net, proxy.request({ uri: `coap://${P.address}:${P.port}/status`, timeout: 3000, security: { context: t.member } }), 5000);
  assert.deepEqual(got.map((r) => `${r.origin.address} ${r.member?.name}`).sort(), ['10.0.1.1 s1', '10.0.1.2 s2', '10.0.1.3 s3']);
  const upstream = t.group.sent[0]!;
  assert.deepEqual(upstream.options.map((o) => o.number), [OptionNumber.Oscore], 'the mount prefix consumed, the resource path inside Group OSCORE');
  const revealed = await requestWithoutTimeout(t, `coap://${P.address}:${P.port}/status`, { uri: `coap://${P.address}:${P.port}/all-lights`, kind: 'reverse', context: t.alice.sender });
  assert.equal(revealed.code, ResponseCode.BadRequest);
  assert.deepEqual(getOption(revealed, OptionNumber.MulticastTimeout), new Uint8Array(0));
});

test('§7: responses cached per server; a complete set answers alone with Group-ETag, revalidated with one 2.03; protected responses are never cached', async () => {
  const members = ['10.0.1.1:5683', '10.0.1.2:5683', '10.0.1.3:5683'];
  let known: string[] | undefined = [...members, '10.0.1.4:5683'];
  const net = new FakeNetwork();
  const cache = new GroupResponseCache({ members: () => known, now: () => net.clock.now() });
  const t = setup({ net, relay: { cache } });
  const get = (options: CoapOption[] = []) => collect(t.net, t.client().request({ uri: `${GROUP}/lights`, timeout: 3000, options }), 5000);
  const summary = (rs: GroupResponse[]) => rs.map((r) => `${r.origin.address} ${r.code === ResponseCode.Content ? '2.05' : r.code} ${Buffer.from(r.payload).toString()}`).sort();

  const first = await get();
  assert.deepEqual(summary(first), [1, 2, 3].map((i) => `10.0.1.${i} 2.05 s${i} read: (plain)`));
  assert.equal(getOption(first[0]!.message, OptionNumber.GroupETag), undefined);
  // A fourth member the proxy knows of never answered: J is not complete, the request goes to the group (§7.1).
  await get();
  assert.equal(t.group.sent.length, 2);

  known = members;
  const cached = await get();
  assert.equal(t.group.sent.length, 2, 'answered from the cache alone');
  assert.deepEqual(summary(cached), summary(first), 'each cached response still names its server (Reply-From stored with it)');
  const etags = cached.map((r) => Buffer.from(getOption(r.message, OptionNumber.GroupETag)!).toString('hex'));
  assert.equal(new Set(etags).size, 1, 'one entity-tag for the set J');
  for (const r of cached) assert.ok(Number(getOption(r.message, OptionNumber.MaxAge)?.[0] ?? 60) <= 60);

  // §7.3: the client names J's entity-tag: one 2.03 with it, no payload.
  const valid = await get([{ number: OptionNumber.GroupETag, value: Buffer.from(etags[0]!, 'hex') }]);
  assert.deepEqual(valid.map((r) => [`${r.origin.address}:${r.origin.port}`, r.code, r.payload.length, Buffer.from(getOption(r.message, OptionNumber.GroupETag)!).toString('hex')]), [[`${P.address}:${P.port}`, ResponseCode.Valid, 0, etags[0]]]);
  // A stale entity-tag: the set again, with the current one.
  assert.equal((await get([{ number: OptionNumber.GroupETag, value: Uint8Array.of(1, 2, 3) }])).length, 3);
  assert.equal(t.group.sent.length, 2);

  // Freshness ends with Max-Age (60 s by default): the group is asked again.
  await t.net.run(61_000);
  await get();
  assert.equal(t.group.sent.length, 3);

  // Under Group OSCORE each response answers one request only (§7.4): never stored, never served.
  await collect(t.net, t.client().request({ uri: `${GROUP}/lights`, timeout: 3000, security: { context: t.member } }), 5000);
  await collect(t.net, t.client().request({ uri: `${GROUP}/lights`, timeout: 3000, security: { context: t.member } }), 5000);
  assert.equal(t.group.sent.length, 5);
});

test('the command line refuses what it cannot do, before any socket: two proxies for a group request, a mount or cache without an allow-list', async () => {
  const { runCli } = await import('./support/group-cli.js');
  const twice = await runCli(['get', `${GROUP}/x`, '--via', 'coap://192.0.2.5', '--via', 'coap://192.0.2.6']);
  assert.equal(twice.code, 2, twice.stderr);
  assert.match(twice.stderr, /one proxy \(--via once\)/);
  for (const flags of [['--group-mount', `/lights=${GROUP}`], ['--group-cache', '224.0.1.187:5683=192.0.2.11:5683']]) {
    const refused = await runCli(['proxy', '--bind', '127.0.0.1:0', ...flags]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /need --group NAME/);
  }
  const badMount = await runCli(['proxy', '--bind', '127.0.0.1:0', '--group', 'alice', '--group-mount', '/x=coap://192.0.2.1']);
  assert.match(badMount.stderr, /not a coap:\/\/ URI of an IP multicast group/);
  assert.doesNotMatch(badMount.stderr + twice.stderr, /\n\s+at /, 'no stack trace');
});
