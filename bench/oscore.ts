/**
 * OSCORE benchmark (issue 4).
 *
 * 1. GET req/s, OSCORE-protected against plain CoAP, coapsec ↔ coapsec in separate processes
 *    (bench/server.js and bench/client.js with variant 'oscore' / 'plain'), sequentially and at
 *    256 in flight, interleaved rounds, medians. Targets: OSCORE ≥ 0.95× plain sequentially and
 *    ≥ 0.8× at 256 in flight. A third contender, 'aead floor' (bench/aead-floor.ts), is plain CoAP
 *    plus only the AEAD operations OSCORE needs on each side: the best any OSCORE on Node's
 *    crypto could do here, so it says whether a target is reachable at all; 'aead floor, batched'
 *    does the same work with the CTR keystreams of 16 nonces per AES call, the least Node allows.
 * 2. In-process micro-benchmarks: protectRequest+unprotectRequest and protectResponse+
 *    unprotectResponse (src/oscore/protect.ts) against a bare AES-CCM-16-64-128 seal+open with
 *    Node's crypto on the same plaintext size; and deriveContext.
 *
 *   node dist/bench/oscore.js [--quick] [--rounds N] [--duration MS] [--concurrency 1,256]
 */
import { MessageType, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { deriveContext } from '../src/oscore/context.js';
import { encodePlaintext, protectRequest, protectResponse, unprotectRequest, unprotectResponse } from '../src/oscore/protect.js';
import { OSCORE_MASTER_SALT, OSCORE_MASTER_SECRET, OSCORE_REPLAY_WINDOW, PAYLOAD, median } from './common.js';
import {
  environment,
  fmt,
  getTable,
  nodeCcmSealOpen,
  runMicroCases,
  type MicroResult,
  met,
  parseCommonArgs,
  perRoundRatio,
  ratio,
  runGetRounds,
  runMain,
  startGetServers,
  summarizeGet,
  table,
  type GetContender,
  parseVariant,
  type TreeVariant,
  variantTable,
} from './harness.js';

const USAGE = `usage: node dist/bench/oscore.js [--quick] [--rounds N] [--duration MS] [--warmup MS]
       [--concurrency 1,256] [--micro-ms MS] [--port-base P (default 47330)] [--socket-buffer BYTES]
       [--variant LABEL=DIR (another tree's plain and OSCORE contenders, interleaved; repeatable)]`;

const TARGETS: Record<number, number> = { 1: 0.95, 256: 0.8 };

// --- micro-benchmarks ------------------------------------------------------------------------

const client = deriveContext({ masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: Buffer.alloc(0), recipientId: Buffer.from('01', 'hex') });
const server = deriveContext({ masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: Buffer.from('01', 'hex'), recipientId: Buffer.alloc(0) });

/** The benchmark's request (GET /bench, 8-byte token) and response (2.05, 20-byte payload). */
const REQUEST: CoapMessage = {
  type: MessageType.CON,
  code: 1,
  messageId: 0x1234,
  token: Buffer.from('0102030405060708', 'hex'),
  options: [{ number: OptionNumber.UriPath, value: Buffer.from('bench') }],
  payload: new Uint8Array(0),
};
const RESPONSE: CoapMessage = { type: MessageType.ACK, code: 69, messageId: 0x1234, token: REQUEST.token, options: [], payload: PAYLOAD };

function micro(ms: number, rounds: number): MicroResult[] {
  let seq = 0;
  const findRecipient = (): typeof server.recipient => server.recipient;
  const requestRoundTrip = (): void => {
    const { message } = protectRequest(REQUEST, client.sender, seq++ & 0xffffff);
    const r = unprotectRequest(message, findRecipient);
    if (!r.ok) throw new Error(r.reason);
  };
  const binding = protectRequest(REQUEST, client.sender, 1).binding;
  const responseRoundTrip = (): void => {
    const protectedResponse = protectResponse(RESPONSE, server.sender, binding);
    const r = unprotectResponse(protectedResponse, client.recipient, binding);
    if (!r.ok) throw new Error(r.reason);
  };
  const responseToClient = protectResponse(RESPONSE, server.sender, binding);
  const clientSide = (): void => {
    protectRequest(REQUEST, client.sender, seq++ & 0xffffff);
    const r = unprotectResponse(responseToClient, client.recipient, binding);
    if (!r.ok) throw new Error(r.reason);
  };
  const requestPlaintext = encodePlaintext(REQUEST.code, REQUEST.options, REQUEST.payload);
  const responsePlaintext = encodePlaintext(RESPONSE.code, RESPONSE.options, RESPONSE.payload);
  const key = Buffer.from(client.sender.senderKey);
  const nonce = Buffer.alloc(13, 7);
  const aad = Buffer.alloc(11, 3); // the encoded Enc_structure for an empty kid and a 1-byte Partial IV is 11-13 bytes
  const cases: Array<[string, () => void]> = [
    [`protectRequest+unprotectRequest (${requestPlaintext.length}-byte plaintext)`, requestRoundTrip],
    [`raw AES-CCM seal+open, ${requestPlaintext.length} bytes`, () => nodeCcmSealOpen(key, nonce, aad, requestPlaintext)],
    [`protectResponse+unprotectResponse (${responsePlaintext.length}-byte plaintext)`, responseRoundTrip],
    [`raw AES-CCM seal+open, ${responsePlaintext.length} bytes`, () => nodeCcmSealOpen(key, nonce, aad, responsePlaintext)],
    ['deriveContext (HKDF ×3)', () => deriveContext({ masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: Buffer.alloc(0), recipientId: Buffer.from('01', 'hex') })],
    // What OSCORE adds to the client of one GET (compare with the budget of bench/cpu-budget.ts).
    ['client side of one GET: protectRequest + unprotectResponse', clientSide],
  ];
  return runMicroCases(cases, ms, rounds);
}

// --- main ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  let concurrencies = [1, 256];
  let microMs = 1000;
  const variants: TreeVariant[] = [];
  const s = parseCommonArgs(
    process.argv.slice(2),
    { quick: false, rounds: 5, warmupMs: 500, durationMs: 2500, portBase: 47_330, socketBuffer: 1 << 20 },
    { rounds: 2, warmupMs: 300, durationMs: 800 },
    USAGE,
    (arg, value) => {
      if (arg === '--concurrency') concurrencies = value().split(',').map(Number);
      else if (arg === '--micro-ms') microMs = Number(value());
      else if (arg === '--variant') variants.push(parseVariant(value()));
      else return false;
      return true;
    },
  );
  if (s.quick) microMs = Math.min(microMs, 300);
  const started = performance.now();
  const describe = [
    environment(),
    `OSCORE GET (AES-CCM-16-64-128, HKDF-SHA-256, 1-byte/empty IDs, server replay window ${OSCORE_REPLAY_WINDOW}) vs plain CoAP GET; coapsec ↔ coapsec, loopback, ports ${s.portBase}–${s.portBase + 3}, NSTART 256 on both sides`,
    ...variants.map((v) => `variant ${v.label}: plain and oscore from ${v.benchDir}`),
    `${s.rounds} rounds × in-flight {${concurrencies.join(', ')}} × {plain, oscore, aead floor, aead floor batched${variants.map((v) => `, ${v.label} plain, ${v.label} oscore`).join('')}}; each ${s.warmupMs} ms warm-up + ${s.durationMs} ms measured; micro-benchmarks ${s.rounds} rounds × ${microMs} ms`,
  ];
  for (const line of describe) console.error(line);

  const contenders: GetContender[] = [
    { label: 'plain', impl: 'coapsec', variant: 'plain', port: s.portBase },
    { label: 'oscore', impl: 'coapsec', variant: 'oscore', port: s.portBase + 1 },
    { label: 'aead floor', impl: 'coapsec', variant: 'aead-floor', port: s.portBase + 2 },
    { label: 'floor batched', impl: 'coapsec', variant: 'aead-floor-batched', port: s.portBase + 3 },
  ];
  variants.forEach((v, i) => {
    const port = s.portBase + 4 + 2 * i;
    contenders.push(
      { label: `${v.label} plain`, impl: 'coapsec', variant: 'plain', port, benchDir: v.benchDir },
      { label: `${v.label} oscore`, impl: 'coapsec', variant: 'oscore', port: port + 1, benchDir: v.benchDir },
    );
  });
  const servers = await startGetServers(contenders, s.socketBuffer);
  const results = await runGetRounds(contenders, servers, s, concurrencies);

  console.error('micro-benchmarks (in process)…');
  const microResults = micro(microMs, s.rounds);

  console.log('');
  for (const line of describe) console.log(line);
  console.log(`total time ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  console.log(getTable(results, contenders.map((c) => c.label), concurrencies));
  console.log('');
  const ratios: string[][] = [
    ['in flight', 'target', 'oscore/plain req/s', 'met?', 'oscore/plain per round', 'oscore/plain by CPU (client+server)', 'aead floor/plain req/s', 'per round', 'aead floor/plain by CPU', 'floor batched/plain req/s', 'per round', 'floor batched/plain by CPU'],
  ];
  for (const c of concurrencies) {
    const p = summarizeGet(results, 'plain', c);
    const o = summarizeGet(results, 'oscore', c);
    const f = summarizeGet(results, 'aead floor', c);
    const b = summarizeGet(results, 'floor batched', c);
    const r = (o?.rps ?? NaN) / (p?.rps ?? NaN);
    const target = TARGETS[c];
    ratios.push([
      String(c),
      target === undefined ? '-' : `≥ ${target.toFixed(2)}×`,
      ratio(o?.rps ?? NaN, p?.rps ?? NaN),
      target === undefined ? '-' : met(r, target),
      ratio(perRoundRatio(results, 'oscore', 'plain', c), 1),
      ratio((p?.clientCpu ?? NaN) + (p?.serverCpu ?? NaN), (o?.clientCpu ?? NaN) + (o?.serverCpu ?? NaN)),
      ratio(f?.rps ?? NaN, p?.rps ?? NaN),
      ratio(perRoundRatio(results, 'aead floor', 'plain', c), 1),
      ratio((p?.clientCpu ?? NaN) + (p?.serverCpu ?? NaN), (f?.clientCpu ?? NaN) + (f?.serverCpu ?? NaN)),
      ratio(b?.rps ?? NaN, p?.rps ?? NaN),
      ratio(perRoundRatio(results, 'floor batched', 'plain', c), 1),
      ratio((p?.clientCpu ?? NaN) + (p?.serverCpu ?? NaN), (b?.clientCpu ?? NaN) + (b?.serverCpu ?? NaN)),
    ]);
    // The same OSCORE/plain ratio for each variant tree (the floors run from this tree only).
    for (const v of variants) {
      const vp = summarizeGet(results, `${v.label} plain`, c);
      const vo = summarizeGet(results, `${v.label} oscore`, c);
      const vr = (vo?.rps ?? NaN) / (vp?.rps ?? NaN);
      ratios.push([
        `${c} (${v.label})`,
        target === undefined ? '-' : `≥ ${target.toFixed(2)}×`,
        ratio(vo?.rps ?? NaN, vp?.rps ?? NaN),
        target === undefined ? '-' : met(vr, target),
        ratio(perRoundRatio(results, `${v.label} oscore`, `${v.label} plain`, c), 1),
        ratio((vp?.clientCpu ?? NaN) + (vp?.serverCpu ?? NaN), (vo?.clientCpu ?? NaN) + (vo?.serverCpu ?? NaN)),
        ...new Array<string>(6).fill('-'),
      ]);
    }
  }
  console.log(table(ratios));
  if (variants.length > 0) {
    const cpu = (label: string, c: number): number => {
      const x = summarizeGet(results, label, c);
      return (x?.clientCpu ?? NaN) + (x?.serverCpu ?? NaN);
    };
    const pairs = variants.flatMap((v) => [['plain', `${v.label} plain`], ['oscore', `${v.label} oscore`]] as const);
    console.log('');
    console.log(variantTable(results, pairs, concurrencies, cpu));
  }
  console.log('');
  const rows: string[][] = [['operation (in process)', 'ops/s (median)', 'ops/s (min–max)', 'CPU µs/op', 'vs raw AES-CCM']];
  microResults.forEach((m, i) => {
    const raw = i === 0 || i === 2 ? microResults[i + 1] : undefined;
    rows.push([m.name, fmt(median(m.ops)), `${fmt(Math.min(...m.ops))}–${fmt(Math.max(...m.ops))}`, fmt(median(m.cpu), 2), raw ? ratio(median(m.ops), median(raw.ops)) : '-']);
  });
  console.log(table(rows));
}

runMain(main);
