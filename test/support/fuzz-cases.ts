/**
 * What the fuzzer sends (issue 17): per target, classes of datagrams with the answer the protocol
 * prescribes for each (RFC 7252 §3/§4 RST or silence, §5.4 4.02, §5.7.2 5.05, §5.8 4.05, RFC 7959
 * §2.2 4.00, RFC 8613 §8.2 unprotected 4.0x, RFC 8768 5.08, RFC 9175 §2.3 4.01 + Echo), and chaos
 * classes — random bytes, mutated and randomly optioned messages — that may get anything but must
 * not make the target throw.
 */
import { encodeMessage } from '../../src/coap/codec.js';
import { Method, ResponseCode } from '../../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeString, encodeUint, sortOptions, type CoapMessage, type CoapOption } from '../../src/coap/message.js';
import { OptionNumber } from '../../src/coap/options.js';
import { OscoreClientSecurity } from '../../src/client/oscore.js';
import type { ProtectedRequest } from '../../src/client/security.js';
import { OscoreSecurityContext, VolatileSequence, type SecurityContextInput } from '../../src/oscore/security-context.js';
import type { CoapServer } from '../../src/server/server.js';
import type { PeerAddress } from '../../src/transport/transport.js';
import { key, type Prng, type WireTransport } from './fuzz-wire.js';

const hex = (s: string): Uint8Array => Buffer.from(s, 'hex');
/** The OSCORE test specification's contexts: A for the client, B and D (with an ID Context) for the server. */
const COMMON = { masterSecret: hex('0102030405060708090a0b0c0d0e0f10'), masterSalt: hex('9e7ca92223786340') };
const CONTEXT_A: SecurityContextInput = { ...COMMON, senderId: hex(''), recipientIds: [hex('01')], name: 'server' };
const CONTEXT_B: SecurityContextInput = { ...COMMON, senderId: hex('01'), recipientIds: [hex('')], name: 'client-a' };
const CONTEXT_D: SecurityContextInput = { ...CONTEXT_B, idContext: hex('37cbf3210017a2d3'), name: 'client-c' };
export const SERVER_CONTEXTS = [CONTEXT_B, CONTEXT_D];

export type TargetName = 'serve' | 'serve-oscore' | 'proxy';

export interface Target {
  name: TargetName;
  transport: WireTransport;
  server: CoapServer;
}

export const SERVE: PeerAddress = { address: '10.1.0.1', port: 5683 };
export const SERVE_OSCORE: PeerAddress = { address: '10.1.0.2', port: 5683 };
export const PROXY: PeerAddress = { address: '10.1.0.3', port: 5683 };
/**
 * A public-looking address (TEST-NET-1, RFC 5737; the wire is in memory): a forward proxy with a
 * destination policy (issue 17 item 1) refuses private ranges such as 10/8 unless allowed.
 */
export const ORIGIN: PeerAddress = { address: '192.0.2.4', port: 5683 };

/** What a datagram must get back, checked on the replies sent before deliver() returns. */
export type Expectation =
  | { kind: 'none' }
  | { kind: 'rst' }
  /** A piggybacked ACK (or for a NON, a NON) with this code; `payload` when it must match too. */
  | { kind: 'response'; code: number; payload?: string; echo?: boolean }
  /** The same bytes as the reply to the earlier copy (§4.5 deduplication). */
  | { kind: 'same-as'; reply: Uint8Array[] }
  /** An OSCORE-protected response that verifies against the request, with this inner code. */
  | { kind: 'protected'; request: ProtectedRequest; code: number; payload?: string }
  /** Answered later (an upstream exchange): the first response with this token must have this code. */
  | { kind: 'eventually'; code: number; payload?: string }
  /** Chaos: anything, as long as nothing throws. */
  | { kind: 'any' };

export interface Case {
  cls: string;
  target: Target;
  peer: PeerAddress;
  datagram: Uint8Array;
  expect: Expectation;
}

/**
 * Oracle peers are per class and get sequential Message IDs, so no two oracle datagrams of one
 * peer are ever duplicates (§4.5) of each other; chaos peers are separate and may collide freely.
 */
class Peers {
  private readonly counters = new Map<string, number>();
  private readonly classIndex = new Map<string, number>();
  /** A peer of this class (one of 16) and its next Message ID. */
  next(cls: string, random: Prng): { peer: PeerAddress; messageId: number } {
    let index = this.classIndex.get(cls);
    if (index === undefined) this.classIndex.set(cls, (index = this.classIndex.size));
    const peer = { address: `10.2.${index}.${1 + random.int(16)}`, port: 40000 };
    const k = key(peer);
    const messageId = this.counters.get(k) ?? 0;
    this.counters.set(k, (messageId + 1) & 0xffff);
    return { peer, messageId };
  }
  chaos(random: Prng): PeerAddress {
    return { address: `10.3.${random.int(4)}.${random.int(64)}`, port: 30000 + random.int(4) };
  }
}

const opt = (number: number, value: Uint8Array | string | number): CoapOption => ({
  number,
  value: typeof value === 'string' ? encodeString(value) : typeof value === 'number' ? encodeUint(value) : value,
});
const path = (...segments: string[]): CoapOption[] => segments.map((s) => opt(OptionNumber.UriPath, s));

/**
 * The datagrams of each class and what they must get back. Oracle peers are per class with
 * sequential Message IDs (see Peers); `deliver` sends a datagram at once and returns the replies,
 * for the classes that need an earlier copy's answer (deduplication).
 */
export class CaseGenerator {
  private readonly peers = new Peers();
  private readonly oscoreClient = new OscoreClientSecurity(new OscoreSecurityContext(CONTEXT_A, new VolatileSequence(0)));
  /** Recently sent valid OSCORE requests, for replays. */
  private readonly recentProtected: CoapMessage[] = [];
  private tokenCounter = 0;

  constructor(
    private readonly random: Prng,
    private readonly targets: Record<TargetName, Target>,
    private readonly deliver: (c: Case) => Uint8Array[],
  ) {}

  next(): Case {
    return this.generate();
  }

  private generate(): Case {
    const r = this.random;
    const roll = r.int(100);
    const target = roll < 45 ? this.targets.serve : roll < 75 ? this.targets['serve-oscore'] : this.targets.proxy;
    const which = r.int(100);
    if (which < 30) return this.chaos(target);
    if (target.name === 'serve-oscore' && which < 65) return this.oscoreCase(target);
    if (target.name === 'proxy' && which < 65) return this.proxyCase(target);
    return this.coapCase(target);
  }

  private token(): Uint8Array {
    const t = this.tokenCounter++;
    return Uint8Array.of(0xf0, (t >>> 24) & 0xff, (t >>> 16) & 0xff, (t >>> 8) & 0xff, t & 0xff);
  }

  private request(cls: string, target: Target, fields: { type?: number; code: number; options?: CoapOption[]; payload?: Uint8Array | string }, expect: Expectation): Case {
    const { peer, messageId } = this.peers.next(cls, this.random);
    const payload = typeof fields.payload === 'string' ? encodeString(fields.payload) : (fields.payload ?? EMPTY_BYTES);
    const datagram = encodeMessage({ type: (fields.type ?? MessageType.CON) as MessageType, code: fields.code, messageId, token: this.token(), options: sortOptions(fields.options ?? []), payload });
    return { cls, target, peer, datagram, expect };
  }

  /** Raw header bytes for the message-layer classes. */
  private raw(cls: string, target: Target, build: (messageId: number) => Uint8Array, expect: Expectation): Case {
    const { peer, messageId } = this.peers.next(cls, this.random);
    return { cls, target, peer, datagram: build(messageId), expect };
  }

  /** RFC 7252 §3, §4, §5.4, §5.7.2, §5.8 and RFC 7959 §2.2 at any target (none of these carry Proxy-Uri). */
  private coapCase(target: Target): Case {
    const r = this.random;
    const con = (b0low: number, code: number, id: number, rest: number[] = []) => Uint8Array.of(0x40 | b0low, code, id >> 8, id & 0xff, ...rest);
    const hello = target.name === 'serve-oscore' || target.name === 'serve' ? 'Hello from coapsec' : undefined;
    switch (r.int(18)) {
      case 0: // §3: TKL 9-15 is a format error; in a CON it gets RST (§4.2).
        return this.raw('format-error CON', target, (id) => con(9 + r.int(7), 0x01, id, [1, 2, 3, 4, 5, 6, 7, 8, 9]), { kind: 'rst' });
      case 1: { // §3: a truncated option, a reserved nibble or a marker without payload; NON/ACK/RST are dropped.
        const bad = r.pick([[0xb5, 0x61], [0xf0], [0x0f], [0xff], [0xd1]]);
        const type = r.int(4);
        return this.raw(type === 0 ? 'format-error CON' : 'format-error non-CON', target, (id) => Uint8Array.of(0x40 | (type << 4), 0x01, id >> 8, id & 0xff, ...bad), type === 0 ? { kind: 'rst' } : { kind: 'none' });
      }
      case 2: // §3: unknown versions are silently ignored.
        return this.raw('unknown version', target, (id) => Uint8Array.of(r.pick([0x00, 0x80, 0xc0]), 0x01, id >> 8, id & 0xff, 0xb5, 0x68, 0x65, 0x6c, 0x6c, 0x6f), { kind: 'none' });
      case 3: // Shorter than a header: nothing to answer.
        return this.raw('runt', target, () => r.bytes(r.int(4)), { kind: 'none' });
      case 4: // §4.3: an Empty CON is a ping, answered with RST.
        return this.raw('ping', target, (id) => con(0, 0, id), { kind: 'rst' });
      case 5: // §4.1: an Empty message with anything after the header is a format error.
        return this.raw('empty with token', target, (id) => con(1, 0, id, [7]), { kind: 'rst' });
      case 6: // §4.3: an Empty NON is ignored; stray ACK/RST match nothing.
        return this.raw('empty non-CON', target, (id) => Uint8Array.of(0x40 | (r.pick([1, 2, 3]) << 4), 0, id >> 8, id & 0xff), { kind: 'none' });
      case 7: // §4.2: a CON with a reserved code class (1, 6, 7) is rejected.
        return this.raw('reserved class', target, (id) => con(0, r.pick([0x20, 0xc1, 0xe0]), id), { kind: 'rst' });
      case 8: // §5.4.1: an unrecognized critical option in a CON request: 4.02.
        return this.request('unknown critical option', target, { code: Method.GET, options: [...path('hello'), opt(r.pick([13, 25, 2049, 65001]), r.bytes(r.int(4)))] }, { kind: 'response', code: ResponseCode.BadOption });
      case 9: // §5.4.5: a repeated non-repeatable critical option is treated as unrecognized.
        return this.request('repeated critical option', target, { code: Method.GET, options: [...path('hello'), opt(OptionNumber.UriPort, 5683), opt(OptionNumber.UriPort, 5684)] }, { kind: 'response', code: ResponseCode.BadOption });
      case 10: // §5.4.3: a critical option with a length outside its range is treated as unrecognized.
        return this.request('critical option too long', target, { code: Method.GET, options: [opt(OptionNumber.UriPath, 'x'.repeat(256 + r.int(200)))] }, { kind: 'response', code: ResponseCode.BadOption });
      case 11: // §5.4.1: an unrecognized elective option is ignored.
        return this.request('unknown elective option', target, { code: Method.GET, options: [...path('hello'), opt(r.pick([2048, 65000, 4094]), r.bytes(3))] }, hello ? { kind: 'response', code: ResponseCode.Content, payload: hello } : { kind: 'response', code: ResponseCode.NotFound });
      case 12: // §5.7.2 at a server that is not a proxy (the proxy target handles these in proxyCase).
        if (target.name === 'proxy') return this.request('unknown path', target, { code: Method.GET, options: path('no', 'such') }, { kind: 'response', code: ResponseCode.NotFound });
        return this.request('Proxy-Uri at a server', target, { code: Method.GET, options: [opt(OptionNumber.ProxyUri, 'coap://10.9.9.9/x')] }, { kind: 'response', code: ResponseCode.ProxyingNotSupported });
      case 13: // §5.8: an unknown method code.
        return this.request('unknown method', target, { code: 0x08 + r.int(24), options: path('hello') }, { kind: 'response', code: ResponseCode.MethodNotAllowed });
      case 14: // RFC 7959 §2.2: SZX 7 is reserved.
        return this.request('Block2 SZX 7', target, { code: Method.GET, options: [...path('large'), opt(OptionNumber.Block2, 0x07)] }, { kind: 'response', code: ResponseCode.BadRequest });
      case 15: // Routing: 4.04 and 4.05.
        return r.chance(0.5)
          ? this.request('unknown path', target, { code: Method.GET, options: path('no', 'such') }, { kind: 'response', code: ResponseCode.NotFound })
          : this.request('method not allowed', target, { code: Method.DELETE, options: path('hello') }, { kind: 'response', code: target.name === 'proxy' ? ResponseCode.NotFound : ResponseCode.MethodNotAllowed });
      case 16: { // §4.5: a duplicate CON gets the same answer again and is not processed twice.
        const first = this.request('duplicate CON', target, { code: Method.POST, options: path('echo'), payload: r.bytes(1 + r.int(40)) }, { kind: 'any' });
        return { ...first, expect: { kind: 'same-as', reply: this.deliver(first) } };
      }
      default: // RFC 9175 §2.3: /valve demands a fresh Echo (not at the proxy, which has no resources).
        if (target.name === 'proxy') return this.request('ping', target, { code: 0 }, { kind: 'rst' });
        return this.request('valve without Echo', target, { code: Method.PUT, options: path('valve'), payload: 'open' }, { kind: 'response', code: ResponseCode.Unauthorized, echo: true });
    }
  }

  /** RFC 8613 §8.2 at `serve` with OSCORE. */
  private oscoreCase(target: Target): Case {
    const r = this.random;
    const protect = (inner: CoapMessage) => this.oscoreClient.protect(inner);
    const inner = (code: number, segments: string[], payload: Uint8Array = EMPTY_BYTES): CoapMessage => ({ type: MessageType.CON, code, messageId: 0, token: EMPTY_BYTES, options: path(...segments), payload });
    const send = (cls: string, message: CoapMessage, expect: Expectation): Case => this.request(cls, target, { code: message.code, options: message.options, payload: message.payload }, expect);
    switch (r.int(8)) {
      case 0:
      case 1: { // A valid request: a protected 2.05 that verifies against it.
        const p = protect(inner(Method.GET, ['oscore', 'hello', '1']));
        this.recentProtected.push(p.message);
        if (this.recentProtected.length > 8) this.recentProtected.shift();
        return send('OSCORE valid', p.message, { kind: 'protected', request: p, code: ResponseCode.Content, payload: 'Hello World!' });
      }
      case 2: { // §7.4: a Partial IV seen before, past deduplication (another Message ID): 4.01.
        const seen = this.recentProtected.at(-1);
        if (!seen) return send('OSCORE valid', protect(inner(Method.GET, ['oscore', 'hello', '1'])).message, { kind: 'any' });
        return send('OSCORE replay', seen, { kind: 'response', code: ResponseCode.Unauthorized, payload: 'Replay detected' });
      }
      case 3: { // §8.2 step 2: an unknown kid: 4.01, unprotected.
        const p = protect(inner(Method.GET, ['oscore', 'hello', '1']));
        const options = p.message.options.map((o) => (o.number === OptionNumber.Oscore ? { number: o.number, value: Uint8Array.of(0x09, 0x01, 0x77) } : o));
        return send('OSCORE unknown kid', { ...p.message, options }, { kind: 'response', code: ResponseCode.Unauthorized });
      }
      case 4: { // §6.1: reserved flag bits make the option malformed: 4.02.
        const p = protect(inner(Method.GET, ['oscore', 'hello', '1']));
        const options = p.message.options.map((o) => (o.number === OptionNumber.Oscore ? { number: o.number, value: Uint8Array.of(0xe0 | (o.value[0] ?? 0), ...o.value.subarray(1)) } : o));
        return send('OSCORE malformed option', { ...p.message, options }, { kind: 'response', code: ResponseCode.BadOption });
      }
      case 5: { // §8.2 step 6: the ciphertext does not verify: 4.00.
        const p = protect(inner(Method.POST, ['oscore', 'hello', '6'], r.bytes(1 + r.int(30))));
        const payload = Uint8Array.from(p.message.payload);
        payload[r.int(payload.length)]! ^= 1 << r.int(8);
        return send('OSCORE tampered', { ...p.message, payload }, { kind: 'response', code: ResponseCode.BadRequest });
      }
      case 6: // The resource policy: the plugtest resources need OSCORE.
        if (r.chance(0.5)) {
          // RFC 7959 §2.2, RFC 7252 §5.4.3: an outer Block option of 4+ bytes is a bad critical option: 4.02.
          const p = protect(inner(Method.POST, ['oscore', 'hello', '6'], r.bytes(8)));
          const block = opt(r.pick([OptionNumber.Block1, OptionNumber.Block2]), r.bytes(4 + r.int(4)));
          return send('OSCORE outer Block too long', { ...p.message, options: sortOptions([...p.message.options, block]) }, { kind: 'response', code: ResponseCode.BadOption });
        }
        return this.request('OSCORE required', target, { code: Method.GET, options: path('oscore', 'hello', '1') }, { kind: 'response', code: ResponseCode.Unauthorized });
      default: { // Chaos inside OSCORE: a valid request with mutated bytes after the header.
        const p = protect(inner(r.pick([Method.GET, Method.POST, Method.PUT]), r.pick([['oscore', 'hello', '1'], ['echo'], ['oscore', 'hello', '6'], ['large']]), r.bytes(r.int(64))));
        const c = send('OSCORE mutated', p.message, { kind: 'any' });
        return { ...c, datagram: this.mutate(c.datagram) };
      }
    }
  }

  /** RFC 7252 §5.7 and RFC 8768 at the forward proxy. */
  private proxyCase(target: Target): Case {
    const r = this.random;
    const origin = `coap://${ORIGIN.address}:${ORIGIN.port}`;
    switch (r.int(7)) {
      case 0:
      case 1: // Forwarded to the origin and answered from there (piggybacked, or separately after the empty ACK).
        return this.request('proxied GET', target, { code: Method.GET, options: [opt(OptionNumber.ProxyUri, `${origin}/hello`)] }, { kind: 'eventually', code: ResponseCode.Content, payload: 'Hello from coapsec' });
      case 2: // §5.7.2: a scheme this proxy does not speak.
        return this.request('unsupported scheme', target, { code: Method.GET, options: [opt(OptionNumber.UriHost, 'example.org'), opt(OptionNumber.ProxyScheme, r.pick(['gopher', 'ftp', 'mqtt']))] }, { kind: 'response', code: ResponseCode.ProxyingNotSupported });
      case 3: // §5.10.2: an unparsable Proxy-Uri.
        return this.request('bad Proxy-Uri', target, { code: Method.GET, options: [opt(OptionNumber.ProxyUri, r.pick(['not a uri', 'coap://[::1/x', '://', 'coap://host:99999/']))] }, { kind: 'response', code: ResponseCode.BadOption });
      case 4: // RFC 8768 §3: Hop-Limit 1 cannot be forwarded.
        return this.request('Hop-Limit 1', target, { code: Method.GET, options: [opt(OptionNumber.ProxyUri, `${origin}/hello`), opt(OptionNumber.HopLimit, 1)] }, { kind: 'response', code: ResponseCode.HopLimitReached });
      case 5: // §5.7.1: "Unsafe options in a request that are not recognized by the proxy MUST lead to a 4.02".
        return this.request('unknown unsafe option', target, { code: Method.GET, options: [opt(OptionNumber.ProxyUri, `${origin}/hello`), opt(r.pick([2050, 4098, 65002]), r.bytes(2))] }, { kind: 'response', code: ResponseCode.BadOption });
      default: // Proxy-Scheme without Uri-Host names no target.
        return this.request('Proxy-Scheme without host', target, { code: Method.GET, options: [opt(OptionNumber.ProxyScheme, 'coap'), ...path('hello')] }, { kind: 'response', code: ResponseCode.BadRequest });
    }
  }

  /** Random bytes, mutated valid messages, and valid headers with random options. */
  private chaos(target: Target): Case {
    const r = this.random;
    const peer = this.peers.chaos(r);
    const cls = ['chaos: random bytes', 'chaos: mutated', 'chaos: random options'][r.int(3)]!;
    let datagram: Uint8Array;
    if (cls === 'chaos: random bytes') datagram = r.bytes(r.int(80));
    else if (cls === 'chaos: mutated') datagram = this.mutate(this.template(target));
    else datagram = this.randomOptions();
    return { cls, target, peer, datagram, expect: { kind: 'any' } };
  }

  private template(target: Target): Uint8Array {
    const r = this.random;
    const options: CoapOption[] = [];
    if (target.name === 'proxy' && r.chance(0.6)) options.push(opt(OptionNumber.ProxyUri, `coap://${ORIGIN.address}:${ORIGIN.port}/${r.pick(['hello', 'large', 'echo', 'time'])}`));
    else options.push(...path(r.pick(['hello', 'large', 'echo', 'config', 'time', 'valve', '.well-known'])));
    if (r.chance(0.3)) options.push(opt(OptionNumber.Block2, r.int(256)));
    if (r.chance(0.2)) options.push(opt(OptionNumber.Observe, r.int(2)));
    if (r.chance(0.2)) options.push(opt(OptionNumber.Block1, r.int(4096)));
    return encodeMessage({ type: r.int(2) as MessageType, code: r.pick([1, 2, 3, 4, 5, 6, 7]), messageId: r.int(0x10000), token: r.bytes(r.int(9)), options: sortOptions(options), payload: r.bytes(r.int(40)) });
  }

  private randomOptions(): Uint8Array {
    const r = this.random;
    const options: CoapOption[] = [];
    let number = 0;
    for (let i = r.int(6); i > 0; i--) {
      number += r.pick([0, 1, 3, 4, 7, 8, 11, 12, 13, 14, 15, 17, 20, 23, 27, 28, 35, 39, 60, 252, 258, 292, 2048, 2049]);
      if (number > 0xffff) break;
      options.push({ number, value: r.bytes(r.pick([0, 1, 2, 4, 8, 13, 40, 270])) });
    }
    return encodeMessage({ type: r.int(4) as MessageType, code: r.int(256), messageId: r.int(0x10000), token: r.bytes(r.int(9)), options, payload: r.bytes(r.int(20)) });
  }

  private mutate(datagram: Uint8Array): Uint8Array {
    const r = this.random;
    const out = Uint8Array.from(datagram);
    switch (r.int(4)) {
      case 0: // bit flips after the header, so most stay version 1
        for (let i = 1 + r.int(3); i > 0 && out.length > 4; i--) out[4 + r.int(out.length - 4)]! ^= 1 << r.int(8);
        return out;
      case 1: // truncation
        return out.subarray(0, r.int(out.length + 1));
      case 2: // random tail
        return Uint8Array.from([...out, ...r.bytes(1 + r.int(16))]);
      default: // one random byte anywhere after the version bits
        if (out.length > 1) out[1 + r.int(out.length - 1)] = r.int(256);
        return out;
    }
  }}

