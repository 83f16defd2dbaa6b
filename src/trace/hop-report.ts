/**
 * Issue 28: the per-hop report of a traced run — for each leg, what an observer of that leg sees
 * and which node can read which layer, computed from the captured datagrams: the DTLS records are
 * parsed (and decrypted with the session secrets each node reported), then each OSCORE layer is
 * removed with the contexts each node holds (fresh copies: the run's replay windows stay as they
 * were). Nothing in the table is assumed; a layer is "readable" only if decrypting it worked.
 */
import { decodeMessage } from '../coap/codec.js';
import { getOption, getStringOptions, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { createRecordProtection, fixedIvLengthOf, keyLengthOf } from '../dtls/cipher.js';
import type { DtlsSessionSecret } from '../dtls/index.js';
import { keyBlock } from '../dtls/prf.js';
import { decodeRecords } from '../dtls/record.js';
import { suiteById } from '../dtls/suites.js';
import { decodeOscoreOption } from '../oscore/option.js';
import { unprotectRequest } from '../oscore/protect.js';
import { OscoreSecurityContext, VolatileSequence } from '../oscore/security-context.js';
import type { TraceLeg, TraceNode, TraceRun } from './run.js';
import { bytesToHex as hex } from '../util/bytes.js';

const HANDSHAKE = 22;
const APPLICATION_DATA = 23;
const HANDSHAKE_NAMES: Record<number, string> = { 1: 'ClientHello', 2: 'ServerHello', 3: 'HelloVerifyRequest', 14: 'ServerHelloDone', 16: 'ClientKeyExchange', 20: 'Finished' };
const NODE_NAMES: Record<TraceNode, string> = { client: 'C', proxy: 'P', server: 'S' };

export interface NodeSecrets {
  node: TraceNode;
  secret: DtlsSessionSecret;
}

/** One OSCORE layer: its name, the nodes holding its context, and the receiving side's context. */
export interface OscoreLayer {
  name: string;
  holders: TraceNode[];
  receiver: OscoreSecurityContext;
}

export interface LegReport {
  leg: TraceLeg['name'];
  observer: string[];
  /** Per layer, outermost first: who can remove it, and what is visible once it is removed. */
  layers: { layer: string; readableBy: TraceNode[]; reveals: string }[];
}


function describeRequest(m: CoapMessage): string {
  const parts = [`code ${m.code >> 5}.${String(m.code & 31).padStart(2, '0')}`];
  const path = getStringOptions(m, OptionNumber.UriPath);
  if (path.length) parts.push(`Uri-Path /${path.join('/')}`);
  const scheme = getOption(m, OptionNumber.ProxyScheme);
  if (scheme) parts.push(`Proxy-Scheme ${Buffer.from(scheme).toString()}`);
  const host = getOption(m, OptionNumber.UriHost);
  if (host) parts.push(`Uri-Host ${Buffer.from(host).toString()}`);
  const oscore = getOption(m, OptionNumber.Oscore);
  if (oscore) parts.push(`OSCORE kid ${hex(decodeOscoreOption(oscore).kid ?? new Uint8Array())}`);
  if (m.payload.length) parts.push(`${m.payload.length} bytes payload`);
  return parts.join(', ');
}

/** The DTLS session of a leg: randoms and suite from the handshake, as an observer reads them. */
function handshakeOf(leg: TraceLeg) {
  let clientRandom: Buffer | undefined;
  let serverRandom: Buffer | undefined;
  let suite: number | undefined;
  const messages: string[] = [];
  const identities = new Set<string>();
  for (const d of leg.datagrams) {
    for (const r of decodeRecords(d.payload)) {
      if (r.type !== HANDSHAKE || r.epoch !== 0 || r.fragment.length < 12) continue;
      const type = r.fragment[0]!;
      const body = r.fragment.subarray(12);
      messages.push(HANDSHAKE_NAMES[type] ?? `handshake ${type}`);
      if (type === 1 && body.length >= 34) clientRandom = Buffer.from(body.subarray(2, 34));
      if (type === 2 && body.length >= 35) {
        serverRandom = Buffer.from(body.subarray(2, 34));
        const sid = body[34]!;
        if (body.length >= 37 + sid) suite = body.readUInt16BE(35 + sid);
      }
      if (type === 16 && body.length >= 2) identities.add(body.subarray(2, 2 + body.readUInt16BE(0)).toString('utf8'));
    }
  }
  return { clientRandom, serverRandom, suite, messages, identities };
}

/** The CoAP requests inside the leg's DTLS records (client → server), with one session secret. */
function decryptRequests(leg: TraceLeg, secret: DtlsSessionSecret, serverRandom: Buffer, suiteId: number): CoapMessage[] {
  const suite = suiteById(suiteId);
  if (!suite) return [];
  const kb = keyBlock(secret.masterSecret, secret.clientRandom, serverRandom, keyLengthOf(suite.aead), fixedIvLengthOf(suite.aead));
  const read = createRecordProtection(suite.aead, kb.clientWriteKey, kb.clientWriteIv);
  const out: CoapMessage[] = [];
  for (const d of leg.datagrams) {
    if (d.from.address !== leg.from.address) continue;
    for (const r of decodeRecords(d.payload)) {
      if (r.type !== APPLICATION_DATA) continue;
      const plain = read.decrypt(r.type, r.version, r.epoch, r.seq, r.fragment);
      if (!plain) continue;
      try {
        out.push(decodeMessage(plain));
      } catch {
        // not CoAP
      }
    }
  }
  return out;
}

/** Removes one OSCORE layer with a fresh copy of the receiver's context. */
function removeLayer(m: CoapMessage, layer: OscoreLayer): CoapMessage | undefined {
  const fresh = new OscoreSecurityContext(layer.receiver.exportParameters(), new VolatileSequence());
  const r = unprotectRequest(m, (kid, kidContext) => fresh.recipient(kid, kidContext)?.params);
  return r.ok ? r.message : undefined;
}

export function hopReport(run: TraceRun, secrets: readonly NodeSecrets[]): LegReport[] {
  const layers: OscoreLayer[] = [
    { name: 'OSCORE C–P (hop to the proxy)', holders: ['client', 'proxy'], receiver: run.contexts.toProxy.proxy },
    { name: 'OSCORE C–S (end to end)', holders: ['client', 'server'], receiver: run.contexts.endToEnd.server },
  ];
  return run.legs.map((leg) => {
    const hs = handshakeOf(leg);
    const appRecords = leg.datagrams.flatMap((d) => decodeRecords(d.payload).filter((r) => r.type === APPLICATION_DATA).map((r) => r.fragment.length + 13));
    const plainCoap = leg.datagrams.filter((d) => {
      try {
        decodeMessage(d.payload);
        return true;
      } catch {
        return false;
      }
    }).length;
    const observer = [
      `${leg.datagrams.length} datagrams between ${leg.from.address} and ${leg.to.address}; ${plainCoap} of them readable as CoAP`,
      `DTLS handshake in the clear: ${[...new Set(hs.messages)].join(', ')}${hs.identities.size ? `; PSK identity "${[...hs.identities].join('", "')}"` : ''}`,
      `${appRecords.length} encrypted application-data records (${appRecords.join(', ')} bytes): sizes and timing, not contents`,
    ];
    const report: LegReport = { leg: leg.name, observer, layers: [] };
    const holders = secrets.filter((s) => hs.clientRandom && s.secret.clientRandom.equals(hs.clientRandom));
    const session = holders[0]?.secret;
    if (!session || !hs.serverRandom || hs.suite === undefined) {
      report.layers.push({ layer: 'DTLS', readableBy: [], reveals: 'no node reported this session\'s secret' });
      return report;
    }
    let messages = decryptRequests(leg, session, hs.serverRandom, hs.suite);
    const dtlsHolders = [...new Set(holders.map((h) => h.node))];
    report.layers.push({ layer: `DTLS (${suiteById(hs.suite)?.name ?? hs.suite})`, readableBy: dtlsHolders, reveals: messages.length ? describeRequest(messages[0]!) : 'nothing decrypted' });
    // Peel OSCORE layers, outermost first, as long as one of ours fits the request's kid.
    for (let depth = 0; depth < layers.length && messages.length; depth++) {
      const next = layers.map((layer) => ({ layer, inner: messages.map((m) => removeLayer(m, layer)).filter((m): m is CoapMessage => m !== undefined) })).find((x) => x.inner.length > 0);
      if (!next) break;
      report.layers.push({ layer: next.layer.name, readableBy: next.layer.holders, reveals: describeRequest(next.inner[0]!) });
      messages = next.inner;
    }
    return report;
  });
}

export function renderHopReport(reports: readonly LegReport[]): string {
  const lines: string[] = [];
  for (const r of reports) {
    lines.push(`leg ${r.leg}`, '  an observer of this leg sees:', ...r.observer.map((o) => `    - ${o}`), '  layer by layer (the request), with the keys of:');
    for (const l of r.layers) lines.push(`    - ${l.layer}: ${l.readableBy.length ? l.readableBy.map((n) => NODE_NAMES[n]).join(', ') : 'nobody'} → ${l.reveals}`);
  }
  const nodes: TraceNode[] = ['client', 'proxy', 'server'];
  lines.push('', `what each node could decrypt | ${reports.map((r) => r.leg).join(' | ')}`);
  for (const n of nodes) {
    const cells = reports.map((r) => r.layers.filter((l) => l.readableBy.includes(n)).map((l) => l.layer.split(' (')[0]).join(' + ') || '—');
    lines.push(`${NODE_NAMES[n]} (${n}) | ${cells.join(' | ')}`);
  }
  lines.push(`on-path observer | ${reports.map(() => 'handshake, sizes, timing').join(' | ')}`);
  return lines.join('\n');
}
