/**
 * EDHOC benchmark (issue 19): handshakes per second of the sans-IO EDHOC core (RFC 9528), methods 0
 * (signatures) and 3 (static DH) with cipher suites 0 (X25519, Ed25519, AES-CCM) and 2 (P-256,
 * ES256, AES-CCM), against DTLS 1.2 handshakes of our own stack in the same run: PSK
 * (TLS_PSK_WITH_AES_128_CCM_8) and RPK (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, P-256 raw public keys).
 *
 * Everything in this process, engine to engine in memory: one EDHOC handshake is message_1, _2 and
 * _3 through both state machines, the two sessions and their OSCORE parameters (App. A.1), with
 * fresh ephemeral keys and fixed long-term credentials (CCS by kid), as a client meeting a known
 * server would run it; one DTLS handshake is bench/dtls-handshake.ts (cookie exchange included).
 * Cases rotate order per round; the medians and their ratios are printed. No sockets: an
 * EDHOC-over-CoAP API does not exist on this branch, so loopback UDP is not measured.
 *
 *   node dist/bench/edhoc.js [--quick] [--rounds N] [--duration MS]
 */
import { EdhocInitiator, EdhocResponder, type EdhocMethod } from '../src/edhoc/index.js';
import { edhocCredentials } from './edhoc-credentials.js';
import { median } from './common.js';
import { DTLS_HANDSHAKE_MODES, dtlsHandshakeInMemory } from './dtls-handshake.js';
import { environment, fmt, parseCommonArgs, runMain, runMicroCases, table } from './harness.js';

const USAGE = 'usage: node dist/bench/edhoc.js [--quick] [--rounds N] [--duration MS]';

const EDHOC_CASES: readonly { method: EdhocMethod; suite: number }[] = [
  { method: 0, suite: 0 },
  { method: 0, suite: 2 },
  { method: 3, suite: 0 },
  { method: 3, suite: 2 },
];

/** A client–server pair of configurations; each call of the returned op runs one full handshake. */
function edhocHandshake(method: EdhocMethod, suite: number): () => void {
  const { initiator, responder } = edhocCredentials(method, suite);
  const C_I = Uint8Array.of(0x37);
  const C_R = Uint8Array.of(0x27);
  return () => {
    const { state: waitM2, message: m1 } = new EdhocInitiator(initiator).prepareMessage1({ connectionId: C_I });
    const { state: waitM3, message: m2 } = new EdhocResponder(responder).processMessage1(m1).prepareMessage2({ connectionId: C_R });
    const { state: sentM3, message: m3 } = waitM2.processMessage2(m2).prepareMessage3();
    const server = waitM3.processMessage3(m3).complete().oscore();
    const client = sentM3.complete().oscore();
    if (server.masterSecret[0] !== client.masterSecret[0]) throw new Error('EDHOC sides disagree');
  };
}

async function main(): Promise<void> {
  const settings = parseCommonArgs(
    process.argv.slice(2),
    { quick: false, rounds: 5, warmupMs: 200, durationMs: 1000, portBase: 0, socketBuffer: 0 },
    { rounds: 3, durationMs: 400 },
    USAGE,
  );
  const cases: Array<[string, () => void]> = [
    ...EDHOC_CASES.map(({ method, suite }): [string, () => void] => [`EDHOC method ${method}, suite ${suite}`, edhocHandshake(method, suite)]),
    ...DTLS_HANDSHAKE_MODES.map((mode): [string, () => void] => [mode === 'psk' ? 'DTLS 1.2 PSK (PSK_WITH_AES_128_CCM_8)' : 'DTLS 1.2 RPK (ECDHE_ECDSA_WITH_AES_128_CCM_8, P-256)', dtlsHandshakeInMemory(mode)]),
  ];
  console.log(`# EDHOC vs DTLS handshakes, in process, ${settings.rounds} rounds × ${settings.durationMs} ms per case\n${environment()}\n`);
  const results = runMicroCases(cases, settings.durationMs, settings.rounds);
  const handshakesPerSecond = new Map(cases.map(([name], i) => [name, median(results[i]!.ops)]));
  const psk = handshakesPerSecond.get(cases[EDHOC_CASES.length]![0])!;
  const rpk = handshakesPerSecond.get(cases[EDHOC_CASES.length + 1]![0])!;
  const rows: string[][] = [['handshake (both sides, in process)', 'handshakes/s (median)', 'min–max', 'CPU µs/handshake', '÷ DTLS-PSK', '÷ DTLS-RPK']];
  cases.forEach(([name], i) => {
    const ops = results[i]!.ops;
    const hs = handshakesPerSecond.get(name)!;
    rows.push([name, fmt(hs), `${fmt(Math.min(...ops))}–${fmt(Math.max(...ops))}`, fmt(median(results[i]!.cpu), 0), `${(hs / psk).toFixed(2)}×`, `${(hs / rpk).toFixed(2)}×`]);
  });
  console.log(table(rows));
}

runMain(main);
