/**
 * Issue 7: runs every attack × scenario × protection on the lockstep network, with the adversary
 * at the forward proxy P (on its P↔S leg, i.e. after it removed its own C–P layer), and judges the
 * outcome from what the endpoints' applications actually accepted. `npm run threats` prints the
 * table and writes docs/threat-model.md; test/threats.test.ts asserts on the same runs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { createAttack, Interceptor, type AttackOptions, type Datagram, type Emission } from '../src/attack/attacks.js';
import { RecordInterceptor } from '../src/attack/record-attacks.js';
import { runForwardSecrecyMatrix } from '../src/attack/forward-secrecy.js';
import { runKudosThreats } from '../src/attack/kudos-threats.js';
import { renderGroupThreats, runGroupThreats } from '../src/attack/group-threats.js';
import { runPubSubNetworkThreats } from '../src/attack/pubsub-network-attacks.js';
import { END_TO_END, PROTECTIONS, renderReport, runKey, THREAT_ROWS, type Outcome, type Protection, type Scenario, type ThreatRow } from '../src/attack/report.js';
import { decodeMessage } from '../src/coap/codec.js';
import type { TransmissionParameters } from '../src/messaging/parameters.js';
import type { DatagramHandler, DatagramTransport, PeerAddress, TransportSecurity } from '../src/transport/transport.js';
import { DtlsLinkTransport, DtlsWire } from './threat-dtls.js';
import { Observation } from '../src/client/observe.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { RouteSecurity } from '../src/client/route.js';
import { PLAIN, securedSender, withEchoRetry, type MessageSecurity, type ProtectedRequest } from '../src/client/security.js';
import { VerificationError } from '../src/client/security.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import { encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeString, getOption, printablePayload, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { parseCoapUri } from '../src/coap/uri.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { ResponseCache } from '../src/proxy/cache.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { SeededRandom } from '../src/util/random.js';

/** A message for a table cell: at most `max` characters, an ellipsis when cut. */
const brief = (text: string, max = 110): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
import { FakeNetwork } from './support/network.js';

const S = { address: '10.0.0.1', port: 5683 };
const C = { address: '10.0.0.2', port: 40000 };
const C2 = { address: '10.0.0.4', port: 40000 };
const P = { address: '10.0.0.3', port: 5683 };
const PUP = { address: P.address, port: 40001 };

function pair(name: string, senderId: number, receiverId: number) {
  const masterSecret = Buffer.from(`secret of ${name}`.padEnd(16, '.'));
  return {
    sender: new OscoreSecurityContext({ masterSecret, senderId: Buffer.from([senderId]), recipientIds: [Buffer.from([receiverId])], name: `${name} sender` }, new VolatileSequence()),
    receiver: new OscoreSecurityContext({ masterSecret, senderId: Buffer.from([receiverId]), recipientIds: [Buffer.from([senderId])], name }, new VolatileSequence()),
  };
}
const msg = (code: number, options: CoapOption[], payload: Uint8Array = EMPTY_BYTES): CoapMessage => ({
  type: MessageType.CON, code, messageId: 0, token: EMPTY_BYTES, options: options.sort((a, b) => a.number - b.number), payload,
});
const path = (s: string) => [{ number: OptionNumber.UriPath, value: encodeString(s) }];
const same = (a: { address: string; port: number }, b: { address: string; port: number }) => a.address === b.address && a.port === b.port;

export interface RunResult extends Outcome {
  /** Datagrams the adversary acted on: altered, injected, replayed, delayed or dropped. */
  attackMessages: number;
}

export interface CaseOptions {
  seed?: number;
  freshness?: boolean;
  attack?: AttackOptions;
  /** Exchanges per run in the alarm / observe scenarios (more attack messages per run). */
  rounds?: number;
  /** Idle fake time between exchanges (ms); the defaults let every attack (a 120 s delay) play out. */
  pause?: number;
}

const codeText = (c: number) => `${c >> 5}.${String(c & 31).padStart(2, '0')}`;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export async function runCase(scenario: Scenario, protection: Protection, attackName: string, options: CaseOptions = {}): Promise<RunResult> {
  const { seed = 1, freshness = false, rounds = 2 } = options;
  const net = new FakeNetwork();
  const cs = pair('C-S', 0x5f, 0x01);
  const cs2 = pair('C2-S', 0x60, 0x03);
  const cp = pair('C-P', 0x20, 0x02);
  const cp2 = pair('C2-P', 0x21, 0x04);
  const endToEnd = END_TO_END.includes(protection);
  // Hop-by-hop DTLS: every hop a DTLS session on an in-memory wire; the adversary is P itself
  // (acting on the plaintext between its two sessions) or, for dtls-outsider, on the P–S wire.
  const wire = protection.startsWith('dtls') ? new DtlsWire(net.clock) : undefined;
  const links: { name: string; link: DtlsLinkTransport }[] = [];
  const endpointAt = (address: PeerAddress, role: 'client' | 'server', parameters: Partial<TransmissionParameters>, seed: number, transport?: DatagramTransport): CoapEndpoint => {
    if (!wire) return net.endpoint(address, parameters, seed);
    if (!transport) {
      const link = new DtlsLinkTransport(wire, address, role);
      links.push({ name: same(address, S) ? 'server' : same(address, P) ? 'proxy' : 'client', link });
      transport = link;
    }
    return new CoapEndpoint({ transport, scheduler: net.clock, random: new SeededRandom(seed), parameters });
  };
  const state = { alarm: 1, valve: 'closed', executed: [] as { payload: string; at: number; method: string }[], forged: [] as string[] };
  // What the origin itself answered (its application and its OSCORE layer), and what it refused.
  const originCodes = new Set<number>();
  const serverDetections: string[] = [];
  const echoRequests = new Set<string>();
  let originSecurity: OscoreServerSecurity | undefined;
  if (endToEnd) {
    originSecurity = new OscoreServerSecurity([cs.receiver, cs2.receiver]);
    const unprotect = originSecurity.unprotect.bind(originSecurity);
    originSecurity.unprotect = (request, context) => {
      const outcome = unprotect(request, context);
      if (outcome && !outcome.ok) {
        originCodes.add(outcome.response.code);
        const diagnostic = Buffer.from(outcome.response.payload).toString();
        serverDetections.push(`server: OSCORE layer refused the request (${codeText(outcome.response.code)}${diagnostic && /^[\x20-\x7e]+$/.test(diagnostic) ? ` ${diagnostic}` : ''})`);
      } else if (outcome?.ok) {
        const hadEcho = getOption(outcome.inner, OptionNumber.Echo) !== undefined;
        const protect = outcome.protect;
        return {
          ...outcome,
          protect: (response, kind) => {
            originCodes.add(response.code);
            if (hadEcho && response.code === ResponseCode.Unauthorized && getOption(response, OptionNumber.Echo) !== undefined) serverDetections.push('server: Echo freshness check refused the request (4.01 + new Echo), valve unchanged');
            return protect(response, kind);
          },
        };
      }
      return outcome;
    };
  }
  const origin = new CoapServer(endpointAt(S, 'server', {}, 1), originSecurity ? { security: originSecurity } : {});
  const forged = (what: string) => () => {
    state.forged.push(what);
    return { code: ResponseCode.Changed, payload: 'forged accepted' };
  };
  origin.resource('/alarm_status', { GET: () => ({ code: ResponseCode.Content, payload: String(state.alarm), maxAge: 5 }), PUT: forged('PUT /alarm_status'), POST: forged('POST /alarm_status'), DELETE: forged('DELETE /alarm_status') }, { observable: true });
  origin.resource('/valve', {
    GET: () => ({ code: ResponseCode.Content, payload: `valve is ${state.valve}` }),
    PUT: (r) => {
      state.executed.push({ payload: r.payload.toString(), at: net.clock.now(), method: 'PUT' });
      state.valve = r.payload.toString();
      return { code: ResponseCode.Changed, payload: `valve ${r.payload.toString()}` };
    },
    POST: forged('POST /valve'),
    DELETE: forged('DELETE /valve'),
  }, freshness ? { freshness: { maxAgeMs: 10_000 } } : {});
  for (const p of ['/valve2']) origin.resource(p, { GET: forged(`GET ${p}`), PUT: forged(`PUT ${p}`) });
  const proxyServer = new CoapServer(endpointAt(P, 'server', {}, 3), protection === 'nested' ? { security: new OscoreServerSecurity([cp.receiver, cp2.receiver]) } : {});
  // Under DTLS, P's upstream endpoint sends through the adversary's hook before its DTLS client
  // encrypts, and receives through it after decryption: the malicious code inside P.
  let upHandler: DatagramHandler = () => {};
  const upLink = wire ? new DtlsLinkTransport(wire, PUP, 'client') : undefined;
  if (upLink) links.push({ name: 'proxy', link: upLink });
  let upSecurity: TransportSecurity | undefined;
  const upTransport: DatagramTransport | undefined = upLink && {
    scheme: 'coaps',
    localAddress: () => PUP,
    close: () => Promise.resolve(),
    setHandler: (h) => void (upHandler = h),
    send: (data, peer) => onDtlsLeg({ from: PUP, to: peer, message: decodeMessage(Buffer.from(data)) }),
  };
  upLink?.setHandler((data, from, security) => {
    upSecurity = security;
    onDtlsLeg({ from, to: PUP, message: decodeMessage(data) });
  });
  const up = endpointAt(PUP, 'client', { nstart: 64 }, 103, upTransport);
  new ForwardProxy(proxyServer, {
    upstream: { endpoint: async () => up },
    allowDestinations: ['10.0.0.0/8'],
    ...(scenario === 'caching' ? { cache: new ResponseCache({ maxBytes: 1 << 20, now: () => net.clock.now() }) } : {}),
  });

  // The adversary: every datagram on P's upstream leg goes through the attack.
  const interceptor = new Interceptor(createAttack(attackName, options.attack), new SeededRandom(seed), () => net.clock.now());
  const upstream: Datagram[] = [];
  let bypass = false;
  let dropThis = false;
  let attackMessages = 0;
  const onUpstream = (d: Datagram) => {
    upstream.push(d);
    if (same(d.from, PUP) && getOption(d.message, OptionNumber.Echo) !== undefined) echoRequests.add(hex(d.message.token));
    if (same(d.from, S) && d.message.code >= 0x40) {
      originCodes.add(d.message.code);
      if (!endToEnd && echoRequests.has(hex(d.message.token)) && d.message.code === ResponseCode.Unauthorized && getOption(d.message, OptionNumber.Echo) !== undefined) serverDetections.push('server: Echo freshness check refused the request (4.01 + new Echo), valve unchanged');
    }
  };
  const insideAdversary = protection !== 'dtls-outsider';
  /** The adversary at P acts on a datagram of its upstream leg; true when it replaced it. */
  const attackOnLeg = (d: Datagram, deliver: (e: Emission) => void): boolean => {
    const out = insideAdversary ? interceptor.intercept(d) : [{ ...d, delayMs: 0 }];
    const unchanged = out.length === 1 && out[0]!.message === d.message && out[0]!.delayMs === 0 && same(out[0]!.to, d.to);
    if (unchanged) {
      onUpstream(d);
      return false;
    }
    if (out.length === 0) attackMessages++;
    for (const e of out) {
      if (e.message !== d.message || e.delayMs !== 0) attackMessages++;
      net.clock.schedule(e.delayMs, () => deliver(e));
    }
    return true;
  };
  const toLeg = (e: Emission) => {
    onUpstream(e);
    sendOnLeg(e);
  };
  const sendOnLeg = (e: Datagram) => {
    const bytes = encodeMessage(e.message);
    if (same(e.to, PUP)) upHandler(bytes, e.from, upSecurity);
    else upLink!.send(bytes, e.to);
  };
  function onDtlsLeg(d: Datagram): void {
    if (!attackOnLeg(d, toLeg)) sendOnLeg(d);
  }
  net.mutate = (d) => {
    const onLeg = (same(d.from, PUP) && same(d.to, S)) || (same(d.from, S) && same(d.to, PUP));
    if (!onLeg) return undefined;
    if (bypass) {
      onUpstream(d);
      return undefined;
    }
    dropThis = attackOnLeg(d, (e) => {
      bypass = true;
      try {
        net.carry(e.from, e.to, encodeMessage(e.message));
      } finally {
        bypass = false;
      }
    });
    return undefined;
  };
  // The outsider: the same attack, on the records of the P–S wire.
  if (wire && !insideAdversary) {
    const records = new RecordInterceptor(attackName, options.attack ?? {}, new SeededRandom(seed), () => net.clock.now());
    wire.tap = (w) => {
      const direction = same(w.from, PUP) && same(w.to, S) ? 'request' : same(w.from, S) && same(w.to, PUP) ? 'response' : undefined;
      if (!direction) return undefined;
      const out = records.intercept({ direction, bytes: w.bytes });
      if (!out) return undefined;
      if (out.length === 0) attackMessages++;
      for (const e of out) if (e.bytes !== w.bytes || e.delayMs !== 0) attackMessages++;
      return out;
    };
  }
  net.drop = () => {
    const d = dropThis;
    dropThis = false;
    return d;
  };

  // The clients. Every verification failure of the client's security layers is recorded.
  const clientDetections: string[] = [];
  const proxyErrors: string[] = [];
  const recording = (security: MessageSecurity): MessageSecurity => ({
    protect: (m) => {
      const p = security.protect(m);
      const verify = p.verify.bind(p);
      return Object.assign(Object.create(Object.getPrototypeOf(p) as object) as ProtectedRequest, p, {
        verify: (response: CoapMessage, notification: boolean) => {
          const v = verify(response, notification);
          if (v instanceof Error) {
            // An unprotected error the origin never sent is the intermediary's own (5.04 after a
            // drop, say): the client got no application response, it did not detect an attack.
            const code = /unprotected (\d)\.(\d\d)/.exec(v.message);
            const c = code ? (Number(code[1]) << 5) | Number(code[2]) : 0;
            if (c >= 0x80 && !originCodes.has(c)) proxyErrors.push(`proxy answered ${codeText(c)}`);
            else clientDetections.push(`client: end-to-end verification failed (${brief(v.message)})`);
          }
          return v;
        },
      });
    },
  });
  const target = (p: string) => parseCoapUri(`coap://${S.address}:${S.port}/${p}`);
  const routeFor = (p: string, second = false) =>
    recording(new RouteSecurity(target(p), [{ uri: `${wire ? 'coaps' : 'coap'}://${P.address}:${P.port}`, ...(protection === 'nested' ? { context: (second ? cp2 : cp).sender } : {}) }], !endToEnd ? PLAIN : new OscoreClientSecurity((second ? cs2 : cs).sender)));
  const clientA = endpointAt(C, 'client', { nstart: 64 }, 2);
  const clientB = endpointAt(C2, 'client', { nstart: 64 }, 4);
  const errors: string[] = [];
  const wrong: string[] = [];
  /** Sends; returns the application response the client accepted, or undefined (an error, recorded). */
  const exchange = async (client: CoapEndpoint, second: boolean, request: CoapMessage, p: string): Promise<CoapMessage | undefined> => {
    try {
      const send = withEchoRetry(securedSender(client, P, routeFor(p, second), { deadline: 60_000 }));
      const r = await net.until(send(request), 200_000);
      if (r.message.code >= 0x80 && !originCodes.has(r.message.code)) {
        // An error the origin never produced: the intermediary's own (e.g. 5.04 after a drop).
        proxyErrors.push(`proxy answered ${codeText(r.message.code)}`);
        return undefined;
      }
      return r.message;
    } catch (error) {
      if (!(error instanceof VerificationError)) errors.push((error as Error).message);
      return undefined;
    }
  };
  const get = async (p: string, client = clientA, second = false) => exchange(client, second, msg(Method.GET, path(p)), p);
  const put = async (value: string) => exchange(clientA, false, msg(Method.PUT, path('valve'), Buffer.from(value)), 'valve');
  const text = (m: CoapMessage) => Buffer.from(m.payload).toString();
  const shown = (m: CoapMessage) => printablePayload(m.payload, 24);
  const expect = (who: string, m: CoapMessage | undefined, code: number, payload: string) => {
    if (m && (m.code !== code || text(m) !== payload)) wrong.push(`${who} accepted ${codeText(m.code)} ${shown(m)} (expected ${codeText(code)} "${payload}")`);
  };

  if (attackName === 'eavesdrop' || attackName === 'traffic-analysis') {
    // Passive: the valve is actuated twice; what can P learn from what it forwarded?
    for (const value of ['open', 'close']) {
      await put(value);
      await net.run(5_000);
    }
    if (!insideAdversary) {
      // The outsider sees only the records of the P–S wire.
      const records = wire!.log.filter((w) => same(w.from, PUP) && same(w.to, S) && w.bytes[0] === 23);
      if (attackName === 'eavesdrop') {
        const learned = ['open', 'close', 'valve'].filter((w) => records.some((r) => r.bytes.includes(w)));
        return { verdict: learned.length ? 'leaked' : 'protected', detail: learned.length ? `the on-path attacker read ${learned.join(', ')}` : 'the on-path attacker saw only DTLS records (ciphertext)', attackMessages };
      }
      const sizes = records.slice(0, 2).map((r) => r.bytes.length);
      return { verdict: sizes[0] !== sizes[1] ? 'leaked' : 'protected', detail: `record sizes ${sizes.join(' vs ')} bytes for "open" vs "close"`, attackMessages };
    }
    const requests = upstream.filter((d) => same(d.from, PUP) && d.message.code !== 0);
    if (attackName === 'eavesdrop') {
      const seen = requests.flatMap((d) => [text(d.message), ...d.message.options.filter((o) => o.number === OptionNumber.UriPath).map((o) => Buffer.from(o.value).toString())]);
      const learned = ['open', 'close', 'valve'].filter((w) => seen.some((x) => x.includes(w)));
      return { verdict: learned.length ? 'leaked' : 'protected', detail: learned.length ? `P read ${learned.map((w) => `"${w}"`).join(', ')} (payload, Uri-Path)` : 'payload and Uri-Path encrypted; P saw only ciphertext', attackMessages };
    }
    const sizes = ['open', 'close'].map((v) => {
      const i = state.executed.findIndex((e) => e.payload === v);
      return i < 0 ? -1 : encodeMessage(requests.filter((d) => d.message.code !== 0)[requests.length - (state.executed.length - i)]?.message ?? msg(0, [])).length;
    });
    const codes = [...new Set(requests.map((d) => codeText(d.message.code)))];
    return { verdict: sizes[0] !== sizes[1] ? 'leaked' : 'protected', detail: `request sizes ${sizes.join(' vs ')} bytes for "open" vs "close"; outer code(s) ${codes.join(', ')} visible`, attackMessages };
  }

  if (scenario === 'alarm') {
    // Two clients with requests in flight at once (A: the alarm, B: the valve state), then A alone.
    state.alarm = 1;
    const [a, b] = await Promise.all([get('alarm_status', clientA, false), get('valve', clientB, true)]);
    expect('client A', a, ResponseCode.Content, '1');
    expect('client B', b, ResponseCode.Content, `valve is ${state.valve}`);
    await net.run(Math.min(5_000, options.pause ?? 5_000));
    for (let value = 2; value < 2 + rounds; value++) {
      state.alarm = value;
      expect('client', await get('alarm_status'), ResponseCode.Content, String(value));
      await net.run(options.pause ?? 10_000);
    }
  } else if (scenario === 'valve') {
    const values = Array.from({ length: rounds }, (_, i) => (i === 0 ? 'open' : i === 1 ? 'close' : `${i % 2 ? 'close' : 'open'}-${i}`));
    for (const value of values) {
      const sentAt = net.clock.now();
      const got = await put(value);
      await net.run(options.pause ?? 150_000);
      const runs = state.executed.filter((e) => e.payload === value);
      expect('client', got, ResponseCode.Changed, `valve ${value}`);
      if (runs.some((e) => e.at - sentAt > 10_000)) wrong.push(`server executed "${value}" ${runs[0]!.at - sentAt} ms late`);
      if (runs.length > 1) wrong.push(`server executed "${value}" ${runs.length} times`);
    }
    const foreign = state.executed.filter((e) => !values.includes(e.payload));
    if (foreign.length) wrong.push(`server executed forged "${foreign[0]!.payload}"`);
    // Each actuation at most once and in the order sent (a subsequence of `values`).
    const indexes = state.executed.map((e) => values.indexOf(e.payload));
    if (indexes.some((x, i) => i > 0 && x <= indexes[i - 1]!)) wrong.push(`server executed ${state.executed.map((e) => e.payload).join()}`);
  } else if (scenario === 'observe') {
    const observation = new Observation(clientA, P, msg(Method.GET, [{ number: OptionNumber.Observe, value: EMPTY_BYTES }, ...path('alarm_status')]), { maxBodySize: 1 << 16, maxRestarts: 0 }, { reregisterDelay: () => 1e9 }, routeFor('alarm_status'));
    const accepted: string[] = [];
    const codes: number[] = [];
    void (async () => {
      try {
        for (;;) {
          const n = await observation.next();
          if (n.done) break;
          accepted.push(/^[0-9]+$/.test(n.value.text()) ? n.value.text() : printablePayload(n.value.payload, 12));
          codes.push(n.value.message.code);
        }
      } catch (error) {
        if (!(error instanceof VerificationError)) errors.push((error as Error).message);
      }
    })();
    await net.run(2_000);
    const last = 1 + Math.max(4, rounds);
    for (let value = 2; value <= last; value++) {
      state.alarm = value;
      origin.changed('/alarm_status');
      await net.run(Math.min(3_000, options.pause ?? 3_000));
    }
    await net.run(20_000);
    const numbers = accepted.map(Number);
    if (codes.some((c) => c !== ResponseCode.Content) || numbers.some((v, i) => !/^[0-9]+$/.test(accepted[i]!) || v < 1 || v > last || (i > 0 && v <= numbers[i - 1]!))) wrong.push(`client accepted notifications ${accepted.join(", ")}`);
  } else {
    // Caching: client A fetches (alarm 1), the value changes and A's Max-Age (5 s) runs out; B fetches.
    for (let round = 0; round < Math.max(1, rounds - 1); round++) {
      state.alarm = 1 + 2 * round;
      expect('client A', await get('alarm_status', clientA, false), ResponseCode.Content, String(state.alarm));
      state.alarm++;
      await net.run(Math.max(6_000, options.pause ?? 10_000));
      expect('client B', await get('alarm_status', clientB, true), ResponseCode.Content, String(state.alarm));
      await net.run(Math.max(6_000, options.pause ?? 10_000));
    }
  }
  if (state.forged.length) wrong.push(`server executed forged ${state.forged[0]}`);

  if (wrong.length) return { verdict: 'undetected', detail: wrong[0]!, attackMessages };
  const dtlsDetections = links.filter((l) => l.link.refused > 0).map((l) => `${l.name}: DTLS record layer discarded ${l.link.refused} record(s) (authentication or replay check)`);
  const detections = [...new Set([...dtlsDetections, ...serverDetections, ...clientDetections])];
  const denial = [...new Set([...proxyErrors, ...errors.map((e) => (/time|deadline|no answer|settled/i.test(e) ? 'client: no response (timeout)' : `client: ${brief(e)}`))])];
  if (detections.length) return { verdict: 'detected', detail: [...detections.slice(0, 3), ...denial.slice(0, 1)].join('; '), attackMessages };
  if (denial.length) return { verdict: 'withheld', detail: `no application response: ${denial.slice(0, 2).join('; ')}`, attackMessages };
  return { verdict: 'ineffective', detail: 'no effect on what the applications accepted', attackMessages };
}

export const SCENARIOS: Scenario[] = ['alarm', 'valve', 'observe', 'caching'];

export async function runRow(row: ThreatRow): Promise<Map<string, RunResult>> {
  const results = new Map<string, RunResult>();
  for (const run of row.runs) {
    for (const protection of PROTECTIONS) results.set(runKey(run, protection), await runCase(run.scenario, protection, run.attack, { freshness: run.freshness === true, ...(run.options ? { attack: run.options } : {}) }));
  }
  return results;
}

/** The randomized attack (`fuzz`) under OSCORE and nested OSCORE: attack messages and false accepts. */
export async function runFuzz(scenarios: Scenario[], config: Record<Scenario, CaseOptions>, seeds: number): Promise<{ messages: number; falseAccepts: string[] }> {
  let messages = 0;
  const falseAccepts: string[] = [];
  for (let seed = 1; seed <= seeds; seed++) {
    for (const scenario of scenarios) {
      for (const p of ['oscore', 'nested'] as const) {
        const r = await runCase(scenario, p, 'fuzz', { ...config[scenario], seed });
        messages += r.attackMessages;
        if (r.verdict === 'undetected') falseAccepts.push(`${scenario} ${p} seed ${seed}: ${r.detail}`);
      }
    }
  }
  return { messages, falseAccepts };
}

export async function runMatrix(): Promise<Map<string, RunResult>> {
  const results = new Map<string, RunResult>();
  for (const row of THREAT_ROWS) for (const [k, v] of await runRow(row)) results.set(k, v);
  return results;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await runMatrix();
  const report = [renderReport(results, runForwardSecrecyMatrix(), runKudosThreats(), await runPubSubNetworkThreats()), ...renderGroupThreats(runGroupThreats())].join('\n');
  process.stdout.write(report + '\n');
  mkdirSync('docs', { recursive: true });
  writeFileSync('docs/threat-model.md', report + '\n');
}
