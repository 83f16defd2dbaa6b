/**
 * TEST TOOL. The adversarial intermediary of issue 7: a catalogue of attacks a malicious proxy can
 * mount on the messages it forwards (draft-hartke-core-e2e-security-reqs §3, draft-ietf-core-
 * attacks-on-coap / "client-side and server-side threats"). Each attack decides, per datagram,
 * what the intermediary emits instead: the message unchanged, changed, nothing, later, twice, or
 * messages of its own. Transport-independent: `Interceptor` is driven by a relay (UDP, see
 * relay.ts) or by an in-memory network in the tests.
 */
import { isRequestCode, isResponseCode, ResponseCode } from '../coap/codes.js';
import { encodeUint, getOption, type CoapMessage, type CoapOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { PeerAddress } from '../transport/transport.js';
import type { RandomSource } from '../util/random.js';

export type Direction = 'request' | 'response';

export interface Datagram {
  from: PeerAddress;
  to: PeerAddress;
  message: CoapMessage;
}

/** What the intermediary sends: `delayMs` after it received the datagram that caused it. */
export interface Emission extends Datagram {
  delayMs: number;
}

export interface AttackState {
  readonly random: RandomSource;
  now(): number;
  /** Every request and response seen so far (before this one), oldest first. */
  readonly seen: Datagram[];
  /** Free per-attack memory. */
  readonly memory: Map<string, unknown>;
}

export interface Attack {
  readonly name: string;
  readonly description: string;
  /** Returns what to emit instead of `d`, or undefined to forward it unchanged. [] drops it. */
  apply(d: Datagram, state: AttackState): Emission[] | undefined;
}

const directionOf = (m: CoapMessage): Direction | undefined => (isRequestCode(m.code) ? 'request' : isResponseCode(m.code) ? 'response' : undefined);
const clone = (m: CoapMessage): CoapMessage => ({ ...m, token: Buffer.from(m.token), payload: Buffer.from(m.payload), options: m.options.map((o) => ({ number: o.number, value: Buffer.from(o.value) })) });
const forward = (d: Datagram, message = d.message, delayMs = 0): Emission[] => [{ from: d.from, to: d.to, message, delayMs }];
const sorted = (options: CoapOption[]) => options.sort((a, b) => a.number - b.number);
const randomByte = (r: RandomSource) => r.bytes(1)[0]!;
const randomInt = (r: RandomSource, n: number) => Math.floor(r.float() * n);

/** Flips at least one bit (never a no-op). */
function flip(bytes: Uint8Array, r: RandomSource): Buffer {
  const out = Buffer.from(bytes);
  if (out.length === 0) return Buffer.from([randomByte(r) | 1]);
  out[randomInt(r, out.length)] ^= randomByte(r) | 1;
  return out;
}

function once(state: AttackState, key: string): boolean {
  if (state.memory.has(key)) return false;
  state.memory.set(key, true);
  return true;
}

export interface AttackOptions {
  /** Which messages are attacked; by default the attack's natural target. */
  direction?: Direction;
  /** For modify-option: the option number to change (default: a random one present). */
  option?: number;
  /** For modify-option: the new value (text) instead of flipped bits. */
  value?: string;
  /** For delay: how long (ms). For stale-cache: the forged Max-Age (s). For flood: how many. */
  amount?: number;
  /** Attack only messages after this many of the target direction passed (default 0). */
  skip?: number;
}

/** Counts target messages; true when this one should be attacked. */
function targeted(d: Datagram, state: AttackState, direction: Direction, skip = 0): boolean {
  if (directionOf(d.message) !== direction) return false;
  const n = (state.memory.get(`count:${direction}`) as number | undefined) ?? 0;
  state.memory.set(`count:${direction}`, n + 1);
  return n >= skip;
}

type Factory = (o: AttackOptions) => Attack;

export const ATTACKS: Record<string, { description: string; create: Factory }> = {
  'modify-payload': {
    description: 'flip bits in the payload (T1:x.1)',
    create: (o) => ({
      name: 'modify-payload', description: 'flip bits in the payload',
      apply: (d, s) => (targeted(d, s, o.direction ?? 'response', o.skip) ? forward(d, { ...clone(d.message), payload: flip(d.message.payload, s.random) }) : undefined),
    }),
  },
  'modify-option': {
    description: 'change the value of an option, or add one (T1:x.2)',
    create: (o) => ({
      name: 'modify-option', description: 'change an option',
      apply: (d, s) => {
        if (!targeted(d, s, o.direction ?? 'request', o.skip)) return undefined;
        const m = clone(d.message);
        const candidates = m.options.filter((x) => (o.option === undefined ? x.number !== OptionNumber.ProxyScheme && x.number !== OptionNumber.UriHost : x.number === o.option));
        const victim = candidates[randomInt(s.random, candidates.length)];
        const value = (x?: CoapOption) => (o.value !== undefined ? Buffer.from(o.value) : x ? flip(x.value, s.random) : encodeUint(randomByte(s.random) | 1));
        if (victim) m.options = m.options.map((x) => (x === victim ? { number: x.number, value: value(x) } : x));
        else m.options = sorted([...m.options, { number: o.option ?? OptionNumber.ContentFormat, value: value() }]);
        return forward(d, m);
      },
    }),
  },
  'modify-code': {
    description: 'change the method or response code (T1:x.3)',
    create: (o) => ({
      name: 'modify-code', description: 'change the code',
      apply: (d, s) => {
        if (!targeted(d, s, o.direction ?? 'request', o.skip)) return undefined;
        const m = clone(d.message);
        m.code = directionOf(m) === 'request' ? (m.code === 3 ? 4 : 3) : m.code === ResponseCode.Content ? ResponseCode.NotFound : ResponseCode.Content;
        return forward(d, m);
      },
    }),
  },
  'modify-header': {
    description: 'change header fields: type and token (T1:x.3)',
    create: (o) => ({
      name: 'modify-header', description: 'change the token',
      apply: (d, s) => (targeted(d, s, o.direction ?? 'response', o.skip) ? forward(d, { ...clone(d.message), token: flip(d.message.token, s.random) }) : undefined),
    }),
  },
  drop: {
    description: 'withhold the message and its retransmissions (T3, Threat 3: Withholding)',
    create: (o) => ({ name: 'drop', description: 'withhold', apply: (d, s) => (targeted(d, s, o.direction ?? 'response', o.skip) ? [] : undefined) }),
  },
  delay: {
    description: 'forward the message late (Threat 2: Delaying)',
    create: (o) => ({
      name: 'delay', description: 'delay',
      apply: (d, s) => {
        if (directionOf(d.message) !== (o.direction ?? 'request')) return undefined;
        // Hold every copy (retransmissions included) of the first target exchange.
        const key = `delay:${Buffer.from(d.message.token).toString('hex')}`;
        if (!s.memory.has(key) && !targeted(d, s, o.direction ?? 'request', o.skip)) return undefined;
        if (s.memory.has(key)) return [];
        s.memory.set(key, true);
        return forward(d, d.message, o.amount ?? 120_000);
      },
    }),
  },
  reorder: {
    description: 'hold one message back and release it after the next one (T1:3.4, T3:5.4)',
    create: (o) => ({
      name: 'reorder', description: 'reorder',
      apply: (d, s) => {
        if (!targeted(d, s, o.direction ?? 'response', o.skip)) return undefined;
        const held = s.memory.get('held') as Datagram | undefined | null;
        if (held === null) return undefined;
        if (!held) {
          s.memory.set('held', d);
          // Acknowledge a held CON ourselves, so the sender goes on to the next message.
          return d.message.type === 0 ? [{ from: d.to, to: d.from, delayMs: 0, message: { type: 2, code: 0, messageId: d.message.messageId, token: Buffer.alloc(0), options: [], payload: Buffer.alloc(0) } }] : [];
        }
        // A retransmission of the held message is withheld too; the next different one releases it.
        // (A server may put a newer state into the retransmission of a CON notification, RFC 7641
        // §4.5.2: a different payload under the same Message ID counts as the next message.)
        if (held.message.messageId === d.message.messageId && Buffer.compare(Buffer.from(held.message.payload), Buffer.from(d.message.payload)) === 0) return [];
        s.memory.set('held', null);
        // Make the older one look newer where Observe says so (the proxy may rewrite it, T1:3.4).
        const older = clone(held.message);
        const observe = getOption(d.message, OptionNumber.Observe);
        if (observe !== undefined && getOption(older, OptionNumber.Observe) !== undefined) {
          older.options = sorted([...older.options.filter((x) => x.number !== OptionNumber.Observe), { number: OptionNumber.Observe, value: encodeUint(Number(Buffer.from(observe).readUIntBE(0, observe.length || 1) || 0) + 1) }]);
        }
        older.messageId = (d.message.messageId + 0x4321) & 0xffff;
        return [...forward(d), { ...held, message: older, delayMs: 1 }];
      },
    }),
  },
  duplicate: {
    description: 'forward the message twice, the copy with a new Message ID (T1:x.5 / replay within the exchange)',
    create: (o) => ({
      name: 'duplicate', description: 'duplicate',
      apply: (d, s) => (targeted(d, s, o.direction ?? 'request', o.skip) && once(s, 'dup') ? [...forward(d), ...forward(d, { ...clone(d.message), messageId: (d.message.messageId + 0x777) & 0xffff }, 50)] : undefined),
    }),
  },
  replay: {
    description: 'record the first message and replay it later, in place of a newer one (T1:x.5, T2)',
    create: (o) => ({
      name: 'replay', description: 'replay',
      apply: (d, s) => {
        const direction = o.direction ?? 'request';
        if (!targeted(d, s, direction, o.skip)) return undefined;
        const first = s.memory.get('first') as CoapMessage | undefined;
        if (!first) {
          s.memory.set('first', clone(d.message));
          return undefined;
        }
        if (direction === 'request') {
          // Replay the recorded request once, next to the new one.
          return once(s, 'replayed') ? [...forward(d), ...forward(d, { ...clone(first), messageId: (first.messageId + 0x555) & 0xffff }, 10)] : undefined;
        }
        // A response: answer this exchange with the old response, with the current token and Observe.
        const old = clone(first);
        const observe = getOption(d.message, OptionNumber.Observe);
        old.options = sorted([...old.options.filter((x) => x.number !== OptionNumber.Observe), ...(observe !== undefined ? [{ number: OptionNumber.Observe, value: Buffer.from(observe) }] : [])]);
        return forward(d, { ...old, token: Buffer.from(d.message.token), messageId: d.message.messageId, type: d.message.type });
      },
    }),
  },
  'stale-cache': {
    description: 'answer a later request from the intermediary’s own cache of an earlier response, with a forged Max-Age',
    create: (o) => ({
      name: 'stale-cache', description: 'stale cache, forged Max-Age',
      apply: (d, s) => {
        const dir = directionOf(d.message);
        if (dir === 'response') {
          if (!s.memory.has('cached') && isResponseCode(d.message.code) && d.message.code < 0x60) s.memory.set('cached', clone(d.message));
          const m = clone(d.message);
          m.options = sorted([...m.options.filter((x) => x.number !== OptionNumber.MaxAge), { number: OptionNumber.MaxAge, value: encodeUint(o.amount ?? 86_400) }]);
          return forward(d, m);
        }
        const cached = s.memory.get('cached') as CoapMessage | undefined;
        if (dir !== 'request' || !cached) return undefined;
        const answer: CoapMessage = { ...clone(cached), token: Buffer.from(d.message.token), messageId: d.message.messageId, type: d.message.type === 0 ? 2 : 1 };
        answer.options = sorted([...answer.options.filter((x) => x.number !== OptionNumber.MaxAge && x.number !== OptionNumber.Observe), { number: OptionNumber.MaxAge, value: encodeUint(o.amount ?? 86_400) }]);
        return [{ from: d.to, to: d.from, message: answer, delayMs: 1 }];
      },
    }),
  },
  'inject-response': {
    description: 'answer a request with a spoofed response before the real one arrives (Threat 1: Spoofing, T2:x.1)',
    create: (o) => ({
      name: 'inject-response', description: 'spoofed response',
      apply: (d, s) => {
        if (!targeted(d, s, 'request', o.skip) || !once(s, 'inject')) return undefined;
        // A forgery built from the most recent genuine response (if any) with its payload altered.
        const template = [...s.seen].reverse().find((x) => directionOf(x.message) === 'response')?.message;
        const base: CoapMessage = template ? clone(template) : { type: 2, code: ResponseCode.Content, messageId: 0, token: Buffer.alloc(0), options: [], payload: Buffer.from('spoofed') };
        const spoof: CoapMessage = { ...base, type: d.message.type === 0 ? 2 : 1, messageId: d.message.messageId, token: Buffer.from(d.message.token), payload: flip(base.payload, s.random) };
        return [{ from: d.to, to: d.from, message: spoof, delayMs: 0 }];
      },
    }),
  },
  'inject-request': {
    description: 'send a spoofed request built from a genuine one (server-side Threat 1: Spoofing, T2:x.2)',
    create: (o) => ({
      name: 'inject-request', description: 'spoofed request',
      apply: (d, s) => {
        if (!targeted(d, s, 'request', o.skip) || !once(s, 'inject')) return undefined;
        const spoof = clone(d.message);
        spoof.messageId = (spoof.messageId + 0x333) & 0xffff;
        spoof.token = Buffer.from([0xee, ...spoof.token].slice(0, 8));
        spoof.payload = flip(spoof.payload, s.random);
        return [...forward(d), ...forward(d, spoof, 20)];
      },
    }),
  },
  swap: {
    description: 'swap the responses of two concurrent requests, also across clients (T1:x.5 "wrong message")',
    create: () => ({
      name: 'swap', description: 'swap responses',
      apply: (d, s) => {
        if (directionOf(d.message) !== 'response') return undefined;
        const held = s.memory.get('held') as Datagram | undefined | null;
        if (held === null) return undefined;
        if (!held) {
          s.memory.set('held', d);
          return [];
        }
        // A retransmission of the held exchange is withheld too: only a response to another
        // request (another token) is swapped with it.
        if (Buffer.compare(Buffer.from(held.message.token), Buffer.from(d.message.token)) === 0) return [];
        s.memory.set('held', null);
        const a = clone(held.message);
        const b = clone(d.message);
        return [
          { ...d, message: { ...a, token: Buffer.from(d.message.token), messageId: d.message.messageId, type: d.message.type }, delayMs: 0 },
          { ...held, message: { ...b, token: Buffer.from(held.message.token), messageId: held.message.messageId, type: held.message.type }, delayMs: 0 },
        ];
      },
    }),
  },
  strip: {
    description: 'strip or downgrade protection: replace a protected response by an unprotected one',
    create: (o) => ({
      name: 'strip', description: 'strip protection',
      apply: (d, s) => {
        if (!targeted(d, s, o.direction ?? 'response', o.skip)) return undefined;
        const m = clone(d.message);
        m.options = m.options.filter((x) => x.number !== OptionNumber.Oscore);
        if (directionOf(m) === 'response') {
          m.code = ResponseCode.Content;
          m.payload = Buffer.from('downgraded');
        }
        return forward(d, m);
      },
    }),
  },
  flood: {
    description: 'flood the requester with forged responses (Threat 4: Flooding, T2:5.2)',
    create: (o) => ({
      name: 'flood', description: 'flood',
      apply: (d, s) => {
        if (!targeted(d, s, 'request', o.skip) || !once(s, 'flood')) return undefined;
        const out = forward(d);
        for (let i = 0; i < (o.amount ?? 50); i++) {
          out.push({ from: d.to, to: d.from, delayMs: 0, message: { type: 1, code: ResponseCode.Content, messageId: randomInt(s.random, 0x10000), token: Buffer.from(d.message.token), options: [], payload: Buffer.from(s.random.bytes(8)) } });
        }
        return out;
      },
    }),
  },
  eavesdrop: {
    description: 'read payload and options in transit (T4:1.1, T4:1.2); forwards everything unchanged',
    create: () => ({ name: 'eavesdrop', description: 'read', apply: () => undefined }),
  },
  'traffic-analysis': {
    description: 'infer the request from sizes, codes and timing (T4:1.3, NOT REQUIRED); forwards unchanged',
    create: () => ({ name: 'traffic-analysis', description: 'metadata', apply: () => undefined }),
  },
  fuzz: {
    description: 'randomized: each message (either direction) is, with probability 0.8, altered, replaced by an older one, duplicated, injected or stripped',
    create: () => ({
      name: 'fuzz', description: 'randomized',
      apply: (d, s) => {
        const r = s.random;
        if (r.float() >= 0.8) return undefined;
        const dir = directionOf(d.message);
        const m = clone(d.message);
        const kind = randomInt(r, 8);
        switch (kind) {
          case 0:
            m.payload = flip(m.payload, r);
            return forward(d, m);
          case 1: {
            const victim = m.options[randomInt(r, m.options.length)];
            if (victim && victim.number !== OptionNumber.UriHost && victim.number !== OptionNumber.ProxyScheme) m.options = m.options.map((x) => (x === victim ? { number: x.number, value: flip(x.value, r) } : x));
            else m.options = sorted([...m.options, { number: OptionNumber.ContentFormat, value: encodeUint(randomByte(r) | 1) }]);
            return forward(d, m);
          }
          case 2:
            m.code = dir === 'request' ? (m.code % 4) + 1 : ([ResponseCode.Content, ResponseCode.Changed, ResponseCode.NotFound].find((c) => c !== m.code) ?? ResponseCode.Content);
            return forward(d, m);
          case 3: {
            // An older message of the same direction, presented as this one.
            const olds = s.seen.filter((x) => directionOf(x.message) === dir && x.message !== d.message);
            const old = olds[randomInt(r, olds.length)];
            if (!old) return forward(d, { ...m, payload: flip(m.payload, r) });
            const o = clone(old.message);
            const observe = getOption(d.message, OptionNumber.Observe);
            if (dir === 'response') o.options = sorted([...o.options.filter((x) => x.number !== OptionNumber.Observe), ...(observe !== undefined ? [{ number: OptionNumber.Observe, value: Buffer.from(observe) }] : [])]);
            return forward(d, { ...o, token: Buffer.from(d.message.token), messageId: d.message.messageId, type: d.message.type });
          }
          case 4:
            // Forged copy injected next to the genuine one.
            return [...forward(d), ...forward(d, { ...m, messageId: (m.messageId + 0x101) & 0xffff, payload: flip(m.payload, r) }, 5)];
          case 5:
            // Verbatim replay with a new Message ID.
            return [...forward(d), ...forward(d, { ...m, messageId: (m.messageId + 0x202) & 0xffff }, 7)];
          case 6:
            m.options = m.options.filter((x) => x.number !== OptionNumber.Oscore);
            if (dir === 'response') m.code = ResponseCode.Content;
            m.payload = Buffer.from(String(randomInt(r, 9)));
            return forward(d, m);
          default:
            m.token = flip(m.token, r);
            return forward(d, m);
        }
      },
    }),
  },
  none: {
    description: 'forward everything unchanged (baseline)',
    create: () => ({ name: 'none', description: 'baseline', apply: () => undefined }),
  },
};

export function createAttack(name: string, options: AttackOptions = {}): Attack {
  const entry = ATTACKS[name];
  if (!entry) throw new Error(`unknown attack "${name}" (one of: ${Object.keys(ATTACKS).join(', ')})`);
  return entry.create(options);
}

/** Holds one attack's state and applies it to every datagram; empty messages (ACK/RST) pass. */
export class Interceptor {
  private readonly state: AttackState;

  constructor(
    readonly attack: Attack,
    random: RandomSource,
    now: () => number,
  ) {
    this.state = { random, now, seen: [], memory: new Map() };
  }

  intercept(d: Datagram): Emission[] {
    if (d.message.code === 0) return forward(d);
    const out = this.attack.apply(d, this.state) ?? forward(d);
    this.state.seen.push(d);
    return out;
  }
}
