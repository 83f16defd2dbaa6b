/**
 * Trust-anchor handshake benchmark (issue 9): DerivedKey and AuthorizedPublicKey handshakes per
 * second at the resource server (RS) against plain PSK and RPK handshakes, and the claim of draft-seitz-core-security-modes-00
 * (§3: "the verification of a MAC is also less resource consuming than verifying a digital
 * signature") measured directly.
 *
 * 1. Full handshakes in memory, one at a time, in this process: src/dtls DtlsClient ↔
 *    DtlsServerEngine, cookie exchange and extended master secret included, one new client and
 *    one new peer address per handshake (the server connection is closed afterwards, untimed):
 *      psk   TLS_PSK_WITH_AES_128_CCM_8, one fixed identity in a table lookup;
 *      dk    the same suite, psk_identity = 'DK.ta1.alice.SEQ.<32 hex>': the RS's PSK lookup
 *            (TrustAnchorVerifier.pskStore) parses the nonce, checks the window, derives
 *            K_RS-C = P_SHA256(K_RS-TA, nonce)[0..16) and marks the window on success. Every
 *            handshake gets a fresh sequence number from the derive helpers (formatNonce +
 *            deriveKey, i.e. the TA's work without its counter file), timed apart as "TA issue";
 *      rpk   TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, raw public keys both ways, client
 *            authentication (requireClientAuth; the client key is in the RS's trusted list);
 *      apk   the same suite, client_certificate_type AuthzCert: a fresh MacCert (issueMacCert,
 *            timed apart) per handshake, the RS verifies it (TrustAnchorVerifier.authz) and the
 *            CertificateVerify, and sends an empty certificate_list;
 *      x509  (if the openssl CLI is available) the same suite with X.509 certificates both ways,
 *            client authentication, both leaves issued directly by one P-256 root: the mode in
 *            which the RS checks a *signature* on the client's credential.
 *    "RS µs" is the wall time spent inside the server engine's receive() calls for one handshake
 *    (single thread, no I/O, so ≈ CPU time; garbage collection lands wherever it happens).
 * 2. Micro-benchmarks of the credential check alone, on the same MacCert: the MAC comparison
 *    (macMatches: HMAC-SHA256 over the 104-byte MAC input + timingSafeEqual), the whole §3.3
 *    check (verifyMacCert: decode, window, SPKI → KeyObject, MAC), ECDSA P-256/SHA-256
 *    verification of a signature over the same 104 bytes (with a ready KeyObject, and with the key
 *    parsed from the SPKI first), the DK lookup (dkGrant), and, for context, an ECDSA signature.
 *
 * Rounds are interleaved (the mode order rotates every round); medians over rounds.
 *
 *   node dist/bench/trust-anchor.js [--quick] [--rounds N] [--duration MS] [--micro-ms MS]
 */
import { execFileSync } from 'node:child_process';
import { createPublicKey, createPrivateKey, randomBytes, sign, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DtlsClient, DtlsServerEngine, parseCertificates, parseP256Spki, spkiOf, validateChain, type DtlsClientOptions, type DtlsEvent } from '../src/dtls/index.js';
import { deriveKey, formatNonce } from '../src/trust-anchor/derive.js';
import { decodeMacCert, encodeMacCert, issueMacCert, macInput, macMatches } from '../src/trust-anchor/maccert.js';
import { TrustAnchorVerifier } from '../src/trust-anchor/resource-server.js';
import { BENCH_CLIENT_KEY_PEM, BENCH_SERVER_KEY_PEM, DTLS_PSK, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CCM_8, median } from './common.js';
import { environment, fmt, opsPerSecond, parseCommonArgs, ratio, table } from './harness.js';
import { generatePrivateKey, CoseCurve } from '../src/cose/index.js';

type Mode = 'psk' | 'dk' | 'rpk' | 'apk' | 'x509';
const LABEL: Record<Mode, string> = {
  psk: 'PSK (plain)',
  dk: 'DerivedKey',
  rpk: 'RPK (plain, client auth)',
  apk: 'AuthorizedPublicKey',
  x509: 'X.509 (client auth)',
};

const K_RS_TA = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const TA_ID = 'ta1';

interface Rig {
  mode: Mode;
  server: DtlsServerEngine;
  /** Makes the client's credentials for the next handshake (the TA's work for dk/apk). */
  issue: () => Omit<DtlsClientOptions, 'now'>;
  /** Checked after each measurement: every handshake really went through the mode's path. */
  check?: (handshakes: number) => void;
}

interface Sample {
  handshakes: number;
  /** Sum over handshakes, ms. */
  totalMs: number;
  serverMs: number;
  issueMs: number;
  toServerBytes: number;
  toClientBytes: number;
  datagrams: number;
  /** Process CPU time (user + system, all threads) over the measured loop, µs: both engines, TA issue, close. */
  cpuMicros: number;
}

const now = (): number => performance.now();

function makeX509(): { server: ReturnType<typeof x509Files>; dir: string } | undefined {
  let dir: string | undefined;
  try {
    dir = mkdtempSync(join(tmpdir(), 'coapsec-ta-bench-'));
    return { server: x509Files(dir), dir };
  } catch (e) {
    console.error(`x509 mode skipped (openssl CLI: ${(e as Error).message.split('\n')[0]})`);
    if (dir) rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

/** A P-256 root CA and two leaves under it (server, client), made with the openssl CLI. */
function x509Files(dir: string) {
  const openssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore', timeout: 20_000 });
  writeFileSync(join(dir, 'leaf.ext'), 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key']);
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=coapsec bench CA', '-days', '2', '-out', 'ca.pem', '-addext', 'basicConstraints=critical,CA:TRUE']);
  const leaf = (n: string, subj: string): void => {
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${n}.key`]);
    openssl(['req', '-new', '-key', `${n}.key`, '-subj', subj, '-out', `${n}.csr`]);
    openssl(['x509', '-req', '-in', `${n}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'leaf.ext', '-out', `${n}.pem`]);
  };
  leaf('server', '/CN=localhost/O=coapsec bench');
  leaf('client', '/CN=client-1/O=coapsec bench');
  const read = (f: string): Buffer => readFileSync(join(dir, f));
  return {
    roots: parseCertificates(read('ca.pem')),
    server: { certificates: parseCertificates(read('server.pem')), privateKey: createPrivateKey(read('server.key')) },
    client: { certificates: parseCertificates(read('client.pem')), privateKey: createPrivateKey(read('client.key')) },
  };
}

function rigs(x509: ReturnType<typeof x509Files> | undefined): Rig[] {
  const serverKey = createPrivateKey(BENCH_SERVER_KEY_PEM);
  const serverPub = createPublicKey(serverKey);
  const clientKey = createPrivateKey(BENCH_CLIENT_KEY_PEM);
  const clientPub = createPublicKey(clientKey);
  const clientSpki = spkiOf(clientPub);
  const common = { now, maxConnections: 4096 };
  const psk = [TLS_PSK_WITH_AES_128_CCM_8];
  const ecdsa = [TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8];
  const out: Rig[] = [];

  const pskKey = DTLS_PSK.key;
  out.push({
    mode: 'psk',
    server: new DtlsServerEngine({ ...common, cipherSuites: psk, pskStore: (id) => (id.toString() === DTLS_PSK.identity ? pskKey : undefined) }),
    issue: () => ({ psk: { identity: Buffer.from(DTLS_PSK.identity), key: pskKey }, cipherSuites: psk }),
  });

  // DerivedKey: the RS as `coapsec serve --trust-anchor` configures it (trust anchors in front of
  // the ordinary PSK table); the TA's nonce with the default 128-bit random part.
  const dkVerifier = new TrustAnchorVerifier([{ id: TA_ID, key: K_RS_TA }]);
  let dkSeq = 0;
  out.push({
    mode: 'dk',
    server: new DtlsServerEngine({ ...common, cipherSuites: psk, pskStore: dkVerifier.pskStore((id) => (id.toString() === DTLS_PSK.identity ? pskKey : undefined)) }),
    issue: () => {
      const identity = formatNonce({ taId: TA_ID, clientId: 'alice', sequence: ++dkSeq, random: randomBytes(16).toString('hex') });
      return { psk: { identity: Buffer.from(identity, 'latin1'), key: deriveKey(K_RS_TA, identity) }, cipherSuites: psk };
    },
    check: () => {
      if (dkVerifier.windowOf(TA_ID)!.highest !== dkSeq) throw new Error(`dk: window at ${dkVerifier.windowOf(TA_ID)!.highest}, issued ${dkSeq}`);
    },
  });

  out.push({
    mode: 'rpk',
    server: new DtlsServerEngine({ ...common, cipherSuites: ecdsa, rpk: { privateKey: serverKey, trustedPeerKeys: [clientPub] }, requireClientAuth: true }),
    issue: () => ({ rpk: { privateKey: clientKey, trustedPeerKeys: [serverPub] }, cipherSuites: ecdsa }),
  });

  const apkVerifier = new TrustAnchorVerifier([{ id: TA_ID, key: K_RS_TA }]);
  let apkSeq = 0;
  out.push({
    mode: 'apk',
    // The RS's key is also its RPK key (as with `serve --rpk`); only the authz path is exercised.
    server: new DtlsServerEngine({ ...common, cipherSuites: ecdsa, authz: apkVerifier.authz(serverKey) }),
    issue: () => ({
      authz: { certificate: encodeMacCert(issueMacCert(K_RS_TA, clientSpki, TA_ID, ++apkSeq)), privateKey: clientKey, serverPublicKey: serverPub },
      cipherSuites: ecdsa,
    }),
    check: () => {
      if (apkVerifier.windowOf(TA_ID)!.highest !== apkSeq) throw new Error(`apk: window at ${apkVerifier.windowOf(TA_ID)!.highest}, issued ${apkSeq}`);
    },
  });

  if (x509) {
    out.push({
      mode: 'x509',
      server: new DtlsServerEngine({ ...common, cipherSuites: ecdsa, x509: { ...x509.server, roots: x509.roots }, requireClientAuth: true }),
      issue: () => ({ x509: { ...x509.client, roots: x509.roots }, cipherSuites: ecdsa }),
    });
  }
  return out;
}

let peerN = 0;
const connected = (events: readonly DtlsEvent[]): boolean => events.some((e) => e.type === 'connected');

/** One full handshake; adds its costs to `s`. */
function handshake(rig: Rig, s: Sample): void {
  const peer = `10.${(peerN >> 16) & 255}.${(peerN >> 8) & 255}.${peerN & 255}:${5000 + (peerN++ % 60000)}`;
  const i0 = now();
  const creds = rig.issue();
  const t0 = now();
  s.issueMs += t0 - i0;
  const client = new DtlsClient({ now, ...creds });
  let toServer = client.start();
  let serverMs = 0;
  let serverUp = false;
  for (let flight = 0; flight < 10 && toServer.length > 0; flight++) {
    const toClient: Buffer[] = [];
    for (const d of toServer) {
      s.toServerBytes += d.length;
      s.datagrams++;
      const a = now();
      const o = rig.server.receive(d, peer);
      serverMs += now() - a;
      if (connected(o.events)) serverUp = true;
      toClient.push(...o.send);
    }
    toServer = [];
    for (const d of toClient) {
      s.toClientBytes += d.length;
      s.datagrams++;
      toServer.push(...client.receive(d).send);
    }
  }
  s.totalMs += now() - t0;
  s.serverMs += serverMs;
  if (client.state !== 'connected' || !serverUp) throw new Error(`${rig.mode}: handshake did not complete (client ${client.state}: ${client.failureReason ?? ''}; server connected: ${serverUp})`);
  rig.server.close(peer);
  s.handshakes++;
}

function measure(rig: Rig, warmupMs: number, durationMs: number): Sample {
  const empty = (): Sample => ({ handshakes: 0, totalMs: 0, serverMs: 0, issueMs: 0, toServerBytes: 0, toClientBytes: 0, datagrams: 0, cpuMicros: 0 });
  const warm = empty();
  for (const end = now() + warmupMs; now() < end; ) handshake(rig, warm);
  const s = empty();
  const cpu0 = process.cpuUsage();
  for (const end = now() + durationMs; now() < end; ) handshake(rig, s);
  const cpu = process.cpuUsage(cpu0);
  s.cpuMicros = cpu.user + cpu.system;
  rig.check?.(s.handshakes);
  return s;
}

// --- micro-benchmarks ---------------------------------------------------------------------------

interface Micro {
  name: string;
  what: string;
  op: () => void;
}

function micros(x509: ReturnType<typeof x509Files> | undefined): Micro[] {
  const clientKey = createPrivateKey(BENCH_CLIENT_KEY_PEM);
  const clientPub = createPublicKey(clientKey);
  const spki = spkiOf(clientPub);
  const verifier = new TrustAnchorVerifier([{ id: TA_ID, key: K_RS_TA }]);
  const body = encodeMacCert(issueMacCert(K_RS_TA, spki, TA_ID, 1));
  const cert = decodeMacCert(body);
  const input = macInput(cert); // the same bytes the MAC covers
  const signature = sign('sha256', input, clientKey);
  const identity = Buffer.from(formatNonce({ taId: TA_ID, clientId: 'alice', sequence: 1, random: randomBytes(16).toString('hex') }), 'latin1');
  const other = generatePrivateKey(CoseCurve.P256);
  let sink = 0;
  const must = (ok: boolean, what: string): void => {
    if (!ok) throw new Error(`micro-benchmark ${what} failed its own check`);
    sink++;
  };
  // The grants are never committed, so the window stays fresh and each call does the full check.
  const list: Micro[] = [
    { name: 'mac', what: 'MacCert MAC: HMAC-SHA256 over the 104-byte MAC input + timingSafeEqual (macMatches)', op: () => must(macMatches(K_RS_TA, cert), 'mac') },
    { name: 'maccert', what: 'whole §3.3 MacCert check: decode, TA id, window, SPKI → KeyObject, MAC (verifyMacCert)', op: () => must(verifier.verifyMacCert(body).spki.length > 0, 'maccert') },
    { name: 'ecdsa-verify', what: 'ECDSA P-256/SHA-256 verify of the same 104 bytes, ready KeyObject', op: () => must(verify('sha256', input, clientPub, signature), 'ecdsa-verify') },
    {
      name: 'ecdsa-verify+spki',
      what: 'ECDSA verify as above, key parsed from the SPKI first (parseP256Spki)',
      op: () => must(verify('sha256', input, parseP256Spki(spki)!, signature), 'ecdsa-verify+spki'),
    },
    { name: 'spki', what: 'SPKI → KeyObject alone (parseP256Spki; part of both checks)', op: () => must(parseP256Spki(spki) !== null, 'spki') },
    { name: 'spki-export', what: 'KeyObject → SPKI DER (spkiOf); the RPK server runs it twice per handshake (own Certificate, trusted-key match)', op: () => must(spkiOf(clientPub).length === 91, 'spki-export') },
    { name: 'dk', what: 'DerivedKey lookup: parse nonce, window, P_SHA256 derivation (dkGrant)', op: () => must(verifier.dkGrant(identity)!.key.length === 16, 'dk') },
    { name: 'ecdsa-sign', what: 'context: ECDSA P-256/SHA-256 signature (ServerKeyExchange, CertificateVerify)', op: () => must(sign('sha256', input, other).length > 0, 'ecdsa-sign') },
  ];
  if (x509) {
    const der = [x509.client.certificates[0]!.raw];
    list.splice(4, 0, {
      name: 'x509-chain',
      what: 'X.509 client check: parse the DER leaf, checkIssued + ECDSA verify under the root, validity (validateChain)',
      op: () => must(validateChain(der, x509.roots, { now: Date.now() }).subject.length > 0, 'x509-chain'),
    });
  }
  void sink;
  return list;
}

// --- main ------------------------------------------------------------------------------------------

const USAGE = 'usage: node dist/bench/trust-anchor.js [--quick] [--rounds N] [--duration MS (per mode and round)] [--warmup MS] [--micro-ms MS]';

function main(): void {
  let microMs = 400;
  const s = parseCommonArgs(
    process.argv.slice(2),
    { quick: false, rounds: 5, warmupMs: 150, durationMs: 1500, portBase: 0, socketBuffer: 0 },
    { rounds: 2, warmupMs: 50, durationMs: 400 },
    USAGE,
    (arg, value) => {
      if (arg !== '--micro-ms') return false;
      microMs = Number(value());
      if (!Number.isInteger(microMs) || microMs < 20) throw new Error('--micro-ms must be an integer ≥ 20');
      return true;
    },
  );
  if (s.quick) microMs = Math.min(microMs, 150);
  const started = now();
  const pki = makeX509();
  try {
    const all = rigs(pki?.server);
    const modes = all.map((r) => r.mode);
    const list = micros(pki?.server);
    const describe = [
      environment(),
      `full DTLS 1.2 handshakes in memory, one at a time, one process: DtlsClient ↔ DtlsServerEngine (cookie exchange, extended master secret, new client and peer per handshake); modes ${modes.join(', ')}`,
      `PSK/DK: TLS_PSK_WITH_AES_128_CCM_8 (0xC0A8); RPK/APK/X.509: TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (0xC0AE), P-256, client authentication; K_RS-TA 32 bytes, K_RS-C 16 bytes, MacCert MAC 32 bytes, window 64`,
      `${s.rounds} rounds × ${modes.length} modes (order rotating), each ${s.warmupMs} ms warm-up + ${s.durationMs} ms measured; micro-benchmarks ${s.rounds} rounds × ${microMs} ms`,
    ];
    for (const line of describe) console.error(line);

    const samples = new Map<Mode, Sample[]>(modes.map((m) => [m, []]));
    const microOps = new Map<string, number[]>(list.map((m) => [m.name, []]));
    for (let round = 0; round < s.rounds; round++) {
      for (let k = 0; k < all.length; k++) {
        const rig = all[(k + round) % all.length]!;
        const x = measure(rig, s.warmupMs, s.durationMs);
        samples.get(rig.mode)!.push(x);
        console.error(
          `round ${round + 1}/${s.rounds}  ${rig.mode.padEnd(5)} ${fmt(x.handshakes / (x.totalMs / 1000)).padStart(6)} handshakes/s` +
            `  µs each: total ${fmt((x.totalMs * 1000) / x.handshakes)} RS ${fmt((x.serverMs * 1000) / x.handshakes)} TA issue ${fmt((x.issueMs * 1000) / x.handshakes, 1)}  (${x.handshakes} handshakes)`,
        );
      }
      for (let k = 0; k < list.length; k++) {
        const m = list[(k + round) % list.length]!;
        const r = opsPerSecond(m.op, microMs, 10_000_000, Math.min(100, microMs / 4));
        microOps.get(m.name)!.push(r.ops);
      }
      console.error(`round ${round + 1}/${s.rounds}  micro: ${list.map((m) => `${m.name} ${fmt(microOps.get(m.name)!.at(-1)!)}/s`).join(', ')}`);
    }

    // --- report ---
    const per = (mode: Mode, f: (x: Sample) => number): number[] => samples.get(mode)!.map(f);
    const hs = (mode: Mode): number => median(per(mode, (x) => x.handshakes / (x.totalMs / 1000)));
    const rsUs = (mode: Mode): number => median(per(mode, (x) => (x.serverMs * 1000) / x.handshakes));
    const clientUs = (mode: Mode): number => median(per(mode, (x) => ((x.totalMs - x.serverMs) * 1000) / x.handshakes));
    const issueUs = (mode: Mode): number => median(per(mode, (x) => (x.issueMs * 1000) / x.handshakes));

    console.log('');
    for (const line of describe) console.log(line);
    console.log(`total time ${((now() - started) / 1000).toFixed(1)} s\n`);
    const rows: string[][] = [
      ['mode', 'handshakes/s (median)', 'min–max', 'RS µs/handshake', 'RS handshakes/s', 'client µs', 'TA issue µs', 'CPU µs/handshake (process)', 'bytes C→RS / RS→C', 'datagrams', 'handshakes'],
    ];
    for (const mode of modes) {
      const xs = samples.get(mode)!;
      const rates = per(mode, (x) => x.handshakes / (x.totalMs / 1000));
      const last = xs.at(-1)!;
      rows.push([
        LABEL[mode],
        fmt(hs(mode)),
        `${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))}`,
        fmt(rsUs(mode)),
        fmt(1e6 / rsUs(mode)),
        fmt(clientUs(mode)),
        mode === 'dk' || mode === 'apk' ? fmt(issueUs(mode), 1) : '-',
        fmt(median(per(mode, (x) => x.cpuMicros / x.handshakes))),
        `${fmt(last.toServerBytes / last.handshakes)} / ${fmt(last.toClientBytes / last.handshakes)}`,
        fmt(last.datagrams / last.handshakes),
        String(xs.reduce((a, x) => a + x.handshakes, 0)),
      ]);
    }
    console.log(table(rows));
    console.log('');
    const pairs: Array<[Mode, Mode]> = [
      ['dk', 'psk'],
      ['apk', 'rpk'],
      ['apk', 'x509'],
      ['rpk', 'psk'],
      ['apk', 'dk'],
    ];
    const ratioRows: string[][] = [['comparison', 'handshakes/s (both engines)', 'RS handshakes/s (1 / RS µs)', 'extra RS µs per handshake']];
    for (const [a, b] of pairs) {
      if (!modes.includes(a) || !modes.includes(b)) continue;
      ratioRows.push([`${LABEL[a]} / ${LABEL[b]}`, ratio(hs(a), hs(b)), ratio(rsUs(b), rsUs(a)), fmt(rsUs(a) - rsUs(b), 1)]);
    }
    console.log(table(ratioRows));
    console.log('');
    const microRows: string[][] = [['operation', 'ops/s (median)', 'min–max', 'µs each', 'what']];
    for (const m of list) {
      const ops = microOps.get(m.name)!;
      microRows.push([m.name, fmt(median(ops)), `${fmt(Math.min(...ops))}–${fmt(Math.max(...ops))}`, fmt(1e6 / median(ops), 2), m.what]);
    }
    console.log(table(microRows));
    console.log('');
    const op = (name: string): number => median(microOps.get(name)!);
    console.log(
      table([
        ['claim (draft-seitz-core-security-modes-00 §3)', 'ratio'],
        ['ECDSA verify / MAC check (mac vs ecdsa-verify), speed-up of the MAC', ratio(op('mac'), op('ecdsa-verify'))],
        ['whole MacCert check vs SPKI parse + ECDSA verify (maccert vs ecdsa-verify+spki)', ratio(op('maccert'), op('ecdsa-verify+spki'))],
        ...(microOps.has('x509-chain') ? [['whole MacCert check vs X.509 client-certificate check (maccert vs x509-chain)', ratio(op('maccert'), op('x509-chain'))]] : []),
      ]),
    );
  } finally {
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  }
}

try {
  main();
} catch (e) {
  console.error(`bench: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
}
