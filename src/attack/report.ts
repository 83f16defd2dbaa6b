/** Issue 7: the threat catalogue of draft-hartke-core-e2e-security-reqs and the report table built from actual attack runs. */
import type { AttackOptions } from './attacks.js';
import type { Decryption, ForwardSecrecyReport } from './forward-secrecy.js';
import type { KudosThreatRow } from './kudos-threats.js';
import { OptionNumber } from '../coap/options.js';
import { renderPubSubReport } from './pubsub-attacks.js';
import { renderCacheableThreats, runCacheableThreats } from './cacheable-threats.js';
import { renderPubSubNetworkReport } from './pubsub-network-attacks.js';

export type Scenario = 'alarm' | 'valve' | 'observe' | 'caching';
/**
 * Where the protection is, and (for hop-by-hop DTLS) where the adversary is: `dtls` — DTLS (PSK)
 * on C–P and on P–S, the adversary is the proxy P (inside both sessions); `dtls-outsider` — the
 * same hops, the adversary is on the P–S wire outside P; `dtls-oscore` — those DTLS hops plus
 * OSCORE C–S end to end, the adversary is P.
 */
export type Protection = 'none' | 'oscore' | 'nested' | 'dtls' | 'dtls-outsider' | 'dtls-oscore';
export const PROTECTIONS: Protection[] = ['none', 'oscore', 'nested', 'dtls', 'dtls-outsider', 'dtls-oscore'];
/** The protections with an end-to-end OSCORE layer between C and S. */
export const END_TO_END: Protection[] = ['oscore', 'nested', 'dtls-oscore'];
export interface Outcome {
  /**
   * undetected: an application accepted what the attack produced (wrong data, a forged, late or
   * repeated actuation); detected: an endpoint (or the proxy) refused the attacked message(s) and no
   * application accepted anything wrong; withheld: nothing wrong was accepted, but an application
   * got no application response (a timeout or an error the proxy produced); ineffective: nothing
   * observable changed; leaked/protected: for the passive (reading) attacks.
   */
  verdict: 'undetected' | 'detected' | 'ineffective' | 'withheld' | 'leaked' | 'protected' | 'not applicable';
  detail: string;
}
export interface ThreatRun {
  scenario: Scenario;
  attack: string;
  freshness?: boolean;
  options?: AttackOptions;
}
export interface ThreatRow {
  id: string;
  threat: string;
  required: boolean;
  /** Requirements this row tests: R1.x (draft-hartke-core-e2e-security-reqs-00 §3.1.4), A1.x / A2.x (draft-hartke-core-e2e-security-reqs-03 §2.2). */
  requirements: string[];
  runs: ThreatRun[];
}

const runs = (attack: string, scenarios: Scenario[], options?: AttackOptions): ThreatRun[] => scenarios.map((scenario) => ({ scenario, attack, ...(options ? { options } : {}) }));

export const THREAT_ROWS: ThreatRow[] = [
  { id: 'payload', threat: 'client-side Threat 1: Spoofing — T1:1.1 / T1:3.1 modified payload (response)', required: true, requirements: ['R1.3', 'R1.5', 'A1.6', 'A2.3'], runs: runs('modify-payload', ['alarm', 'observe', 'caching']) },
  { id: 'payload-request', threat: 'server-side Threat 1: Spoofing — T1:1.1 modified payload (request)', required: true, requirements: ['R1.1', 'R1.5', 'A1.2', 'A2.1'], runs: runs('modify-payload', ['valve'], { direction: 'request' }) },
  { id: 'option-request', threat: 'server-side Threat 1: Spoofing — T1:1.3 modified option (request)', required: true, requirements: ['R1.1', 'R1.6', 'A1.2', 'A2.1'], runs: runs('modify-option', ['alarm', 'valve', 'caching']) },
  { id: 'uri', threat: 'T1:1.3 modified effective request URI (Uri-Path)', required: true, requirements: ['R1.6', 'A1.3', 'A2.2'], runs: [...runs('modify-option', ['valve'], { option: OptionNumber.UriPath, value: 'valve2' }), ...runs('modify-option', ['caching'], { option: OptionNumber.UriPath })] },
  { id: 'option-response', threat: 'client-side Threat 1: Spoofing — T1:1.4 modified option (response)', required: true, requirements: ['R1.3', 'R1.7', 'A1.6', 'A2.3'], runs: runs('modify-option', ['alarm', 'caching'], { direction: 'response' }) },
  { id: 'code', threat: 'T1:1.5 modified code (request method)', required: true, requirements: ['R1.1', 'R1.9', 'A1.2', 'A2.1'], runs: runs('modify-code', ['alarm', 'valve']) },
  { id: 'code-response', threat: 'T1:1.5 / T1:1.6 modified response code', required: true, requirements: ['R1.3', 'R1.9', 'A1.6', 'A2.3'], runs: runs('modify-code', ['valve'], { direction: 'response' }) },
  { id: 'token', threat: 'T1:1.5 modified header (token)', required: true, requirements: ['R1.4', 'R1.9', 'A1.7'], runs: runs('modify-header', ['alarm']) },
  { id: 'spoof-response', threat: 'client-side Threat 1: Spoofing — T2:1.2 spoofed response', required: true, requirements: ['R1.3', 'A1.6', 'A1.7', 'A2.3', 'A2.4'], runs: runs('inject-response', ['alarm', 'caching']) },
  { id: 'spoof-request', threat: 'server-side Threat 1: Spoofing — T2:1.1 spoofed request', required: true, requirements: ['R1.1', 'A1.1', 'A1.2'], runs: runs('inject-request', ['valve']) },
  { id: 'swap', threat: 'T1:1.8 / T3:1.4 wrong response: responses of two concurrent requests (two clients) swapped', required: true, requirements: ['R1.4', 'A1.7', 'A2.4'], runs: runs('swap', ['alarm']) },
  { id: 'replay-response', threat: 'T1:3.5 / T2:3.x replayed notification (old response in place of a new one)', required: true, requirements: ['R1.4', 'A1.8', 'A2.6'], runs: runs('replay', ['observe'], { direction: 'response' }) },
  { id: 'replay-request', threat: 'server-side replay: T1:1.7 / T3:1.3 request received previously (replayed later)', required: true, requirements: ['R1.2', 'A1.4'], runs: runs('replay', ['valve']) },
  { id: 'duplicate', threat: 'server-side replay: duplicated request with a new Message ID', required: true, requirements: ['R1.2', 'A1.4'], runs: runs('duplicate', ['valve']) },
  { id: 'reorder', threat: 'T1:3.4 / T3:3.x reordered notifications (forged Observe)', required: true, requirements: ['A1.10', 'A2.6'], runs: runs('reorder', ['observe'], { skip: 1 }) },
  { id: 'stale-cache', threat: 'T1:1.4 / T1:4.x stale cache answer with forged Max-Age', required: true, requirements: ['R1.4', 'R1.7', 'A1.9', 'A2.4', 'A2.5'], runs: runs('stale-cache', ['caching']) },
  { id: 'strip', threat: 'strip / downgrade protection (unprotected response in place of a protected one)', required: true, requirements: ['R1.3', 'A1.6', 'A2.3'], runs: runs('strip', ['alarm']) },
  { id: 'delay-no-policy', threat: 'server-side Threat 2: Delaying (actuation) — /valve without the freshness policy', required: true, requirements: ['A1.5'], runs: [{ scenario: 'valve', attack: 'delay' }] },
  { id: 'delay-policy', threat: 'server-side Threat 2: Delaying (actuation) — /valve with the freshness policy (Echo)', required: true, requirements: ['A1.5'], runs: [{ scenario: 'valve', attack: 'delay', freshness: true, options: { skip: 1 } }] },
  { id: 'eavesdrop', threat: 'Threat 5: Eavesdropping — T4:1.1 / T4:1.2 proxy reads payload and options', required: true, requirements: ['R1.5', 'R1.8'], runs: runs('eavesdrop', ['valve']) },
  { id: 'withhold', threat: 'client-side/server-side Threat 3: Withholding — T3:1.1 (NR1.1)', required: false, requirements: [], runs: runs('drop', ['alarm', 'valve']) },
  { id: 'flood', threat: 'client-side Threat 4: Flooding — T2:1.3', required: false, requirements: [], runs: runs('flood', ['alarm']) },
  { id: 'traffic-analysis', threat: 'Threat 6: Traffic Analysis — T4:1.3 (NR1.3)', required: false, requirements: [], runs: runs('traffic-analysis', ['valve']) },
];

/** The test (test/threat-forward-secrecy.test.ts) behind the forward-secrecy section. */
export const FORWARD_SECRECY_TEST = 'forward secrecy: a recorded EDHOC run + OSCORE exchange does not decrypt with both long-term keys, and does with the session key';

/** The test (test/threat-kudos.test.ts) behind the KUDOS section. */
export const KUDOS_THREATS_TEST = 'KUDOS: a replayed divergent message, a KUDOS message from a stale context and a request replayed after a restart are refused, and the server does not move';

/** Tests (test/threats.test.ts, test/threat-forward-secrecy.test.ts, test/threat-kudos.test.ts) that cover requirements besides the per-row tests. */
export const EXTRA_TESTS: { name: string; requirements: string[] }[] = [
  { name: 'randomized: zero false accepts over >= 10,000 attack messages under OSCORE and nested OSCORE; the same attacks succeed without protection', requirements: ['R1.1', 'R1.2', 'R1.3', 'R1.4', 'R1.5', 'R1.6', 'R1.7', 'R1.9', 'A1.2', 'A1.4', 'A1.6', 'A1.7', 'A1.8', 'A2.1', 'A2.3', 'A2.4'] },
  { name: 'delay on /valve: undetected without the freshness policy, detected by the server Echo check with it', requirements: ['A1.5'] },
  { name: FORWARD_SECRECY_TEST, requirements: ['R1.10'] },
  { name: KUDOS_THREATS_TEST, requirements: ['R1.2', 'A1.4'] },
];

export const REQUIREMENTS = [
  ...Array.from({ length: 10 }, (_, i) => `R1.${i + 1}`),
  ...Array.from({ length: 10 }, (_, i) => `A1.${i + 1}`),
  ...Array.from({ length: 6 }, (_, i) => `A2.${i + 1}`),
];

export const rowTestName = (row: ThreatRow) => `threat row ${row.id}: ${row.threat}`;
export const runKey = (run: ThreatRun, protection: Protection) => `${run.scenario}|${run.attack}|${run.freshness ? 1 : 0}|${JSON.stringify(run.options ?? {})}|${protection}`;

export const OPEN_ROWS = [
  'R5.7 forward secrecy for publish-subscribe (T4:5.3): **partial** — see the publish-subscribe note below; R1.10 (client–server) is shown above with EDHOC.',
  'Observe under the randomized attack (`fuzz`): the test `randomized: Observe scenario, zero false accepts under OSCORE and nested OSCORE` found a real gap — an attacker who held back the registration\'s first response (it carries no Partial IV) and released it after newer notifications had it accepted. RFC 8613 §4.1.3.5.2 makes that response the oldest; the client (and a route\'s end-to-end layer) now refuse it, and the test asserts zero false accepts.',
  'Request reordering within the freshness window: OSCORE\'s replay window accepts an older, never-delivered request; the Echo policy bounds this to maxAgeMs (10 s for /valve). The randomized test runs /valve with the policy and 11 s between actuations.',
  'Publish-subscribe (draft-hartke-core-e2e-security-reqs-00 §3.5): R5.1–R5.6 are run in the table above. R5.7 is partial: the topic key is rekeyed when a member leaves (a new random generation) and on a schedule (key epochs: every epoch each member steps to a key derived one way from the last and drops the old one, so key material taken later does not read earlier epochs; test/pubsub-protect.test.ts), and retired generations and epochs are refused; but the group key comes from the offline key distribution, not from an ephemeral exchange, and a key file kept on disk reads every epoch from its own on. The rows run twice: on a model of the bytes the broker stores and serves, and over UDP with a real broker and an adversarial relay in front of its subscriber; the multi-process runs (test/pubsub-protect-cli.test.ts, test/pubsub-hop-by-hop.test.ts) check its storage and traffic for the plaintext.',
];

const describeDecryption = (d: Decryption): string => (d.ok ? `decrypted: ${d.request} → "${d.response}"` : `failed: ${d.failedAt}`);

/** R1.10 from actual runs: what a recorder with both long-term keys, or with the session key, can read. */
function forwardSecrecySection(report: ForwardSecrecyReport | undefined): string[] {
  const lines = [
    '',
    '## Forward secrecy (R1.10)',
    '',
    `A passive attacker records an EDHOC run (RFC 9528) and one OSCORE request and response under the context it derived (App. A.1); the endpoints then throw the session away, and the attacker obtains both parties\' long-term private keys. It recomputes everything it can — every Diffie-Hellman value of a long-term key with each public key on the wire or in the credentials, tried as G_XY, then the key schedule through PRK_3e2m (with G_RX) and PRK_4e3m (with G_IY) — and tries to decrypt (\`src/attack/forward-secrecy.ts\`, run in process; test: \`${FORWARD_SECRECY_TEST}\`). The same code decrypts with the session key PRK_out, and with the real G_XY (the control that it is a working decryptor). Every cell is computed by a run.`,
    '',
    '| Protection | with both long-term private keys | with the session key (PRK_out) | control: with the ephemeral secret G_XY |',
    '|---|---|---|---|',
  ];
  if (report === undefined) return [...lines, '| — | not run | not run | not run |'];
  for (const run of report.runs) {
    const failed = run.withLongTermKeys.filter((a) => !a.result.ok);
    const leaked = run.withLongTermKeys.find((a) => a.result.ok);
    const stages = [...new Set(failed.map((a) => (a.result.ok ? '' : a.result.failedAt)))].join('; ');
    const longTerm = leaked
      ? `leaked: ${leaked.label}: ${describeDecryption(leaked.result)}`
      : `protected: ${run.withLongTermKeys.length} attempt(s) (${run.withLongTermKeys.map((a) => a.label).join(', ')}), each failed: ${stages}`;
    lines.push(`| EDHOC method ${run.method}, suite ${run.suite} + OSCORE | ${longTerm} | ${describeDecryption(run.withSessionKey)} | ${describeDecryption(run.control)} |`);
  }
  const pre = report.preShared;
  lines.push(`| OSCORE, pre-shared master secret (baseline) | ${pre.ok ? `leaked: the master secret is the long-term key: ${describeDecryption(pre)}` : `protected: ${describeDecryption(pre)}`} | (the same key) | — |`);
  return lines;
}

/** The KUDOS rows (src/attack/kudos-threats.ts): each attack against KUDOS, and against a server that never retired CTX_OLD. */
function kudosSection(rows: readonly KudosThreatRow[] | undefined): string[] {
  const lines = [
    '',
    '## Key update (KUDOS, draft-ietf-core-oscore-key-update)',
    '',
    `Attacks on the key update itself and on contexts that run it, run in process on the sans-IO \`KudosSession\` with every message encoded to its bytes and decoded again, as an on-path attacker handles them (\`src/attack/kudos-threats.ts\`; test: \`${KUDOS_THREATS_TEST}\`; the same refusals over loopback UDP in test/kudos-wire-replay.test.ts and test/kudos-restart-replay.test.ts, and across kill -9 in test/kudos-crash.test.ts). The baseline is the same message at the server the row names: one that never retired CTX_OLD, still using it as its context, or one with the same context and no memory of the message — there is no unprotected baseline, since a KUDOS context only exists under OSCORE. Every cell is computed by a run.`,
    '',
    '| Threat | Attack | Protection | Outcome | Baseline |',
    '|---|---|---|---|---|',
  ];
  if (rows === undefined) return [...lines, '| — | not run | not run | not run | not run |'];
  const cell = (o: KudosThreatRow['outcome']) => `${o.verdict}: ${o.detail.replace(/\|/g, '/')}`;
  for (const row of rows) lines.push(`| ${row.threat} | ${row.attack} | ${row.protection} | ${cell(row.outcome)} | ${row.baselineServer}: ${cell(row.baseline)} |`);
  return lines;
}

export function renderReport(results: Map<string, Outcome>, forwardSecrecy?: ForwardSecrecyReport, kudos?: readonly KudosThreatRow[], pubsubNetwork?: ReadonlyMap<string, Outcome>): string {
  const lines = [
    '# Threat model: outcomes of the attack suite (generated by `npm run threats`)',
    '',
    'The adversary is the forward proxy P, attacking on its upstream leg after removing its own C–P layer (`src/attack/attacks.ts`, the same code `coapsec attack-proxy` runs). Every cell is computed by running the attack on the lockstep network (test/threat-report.ts); nothing in this table is written by hand.',
    '',
    'The DTLS columns run the same scenarios with DTLS 1.2 (PSK) on each hop, C–P and P–S, on the same lockstep network (test/threat-dtls.ts drives the project\'s DTLS engine over an in-memory wire). **DTLS hop-by-hop, adversary P**: P terminates both sessions, so it attacks the plaintext between them exactly as in the unprotected column — this is the point of draft-hartke-core-e2e-security-reqs (-00 §1–§2, -03 §1): hop-by-hop security does not protect against the proxy. **DTLS hop-by-hop, adversary on the P–S wire**: an on-path attacker outside P, who sees only DTLS records, plays each attack on the records instead (`src/attack/record-attacks.ts`: flip ciphertext bits, drop, delay, reorder, replay a genuine record, inject a forged one); this is what DTLS does stop. **DTLS hop-by-hop + OSCORE C–S, adversary P**: both layers, the proxy again the adversary.',
    '',
    'Verdicts: **undetected** — an application accepted what the attack produced; **detected** — the attacked message(s) were refused (by whom and how is given) and nothing wrong was accepted; **withheld** — nothing wrong was accepted but an application got no application response (timeout, or an error the proxy produced); **ineffective** — nothing observable changed; **leaked / protected** — passive reading attacks.',
    '',
    '| Threat | draft-hartke-core-e2e-security-reqs says | Scenario | Attack | no protection | OSCORE (C–S) | nested OSCORE (C–S + C–P) | DTLS hop-by-hop (C–P, P–S); adversary P | DTLS hop-by-hop; adversary on the P–S wire, outside P | DTLS hop-by-hop + OSCORE (C–S); adversary P |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  const cell = (o: Outcome | undefined) => (o ? `${o.verdict}: ${o.detail.replace(/\|/g, '/').replace(/\n/g, ' ')}` : 'not run');
  for (const row of THREAT_ROWS) {
    for (const run of row.runs) {
      const opts = run.options && Object.keys(run.options).length ? ` ${JSON.stringify(run.options)}` : '';
      lines.push(`| ${row.threat} | ${row.required ? 'REQUIRED' : 'NOT REQUIRED'} | ${run.scenario} | ${run.attack}${opts} | ${PROTECTIONS.map((p) => cell(results.get(runKey(run, p)))).join(' | ')} |`);
    }
  }
  lines.push(...forwardSecrecySection(forwardSecrecy));
  lines.push(...kudosSection(kudos));
  lines.push('', renderPubSubReport(renderPubSubNetworkReport(pubsubNetwork)));
  lines.push(...renderCacheableThreats(runCacheableThreats()));
  lines.push('', '## Requirements → tests', '', 'Each requirement of draft-hartke-core-e2e-security-reqs-00 §3.1.4 (R1.1–R1.10) and draft-hartke-core-e2e-security-reqs-03 §2.2 (A1.1–A1.10, A2.1–A2.6) and the tests in `test/threats.test.ts`, `test/threat-forward-secrecy.test.ts` and `test/threat-kudos.test.ts` that exercise it.', '', '| Requirement | Tests |', '|---|---|');
  for (const req of REQUIREMENTS) {
    const tests = [...THREAT_ROWS.filter((r) => r.requirements.includes(req)).map(rowTestName), ...EXTRA_TESTS.filter((t) => t.requirements.includes(req)).map((t) => t.name)];
    lines.push(`| ${req} | ${tests.length ? tests.map((t) => `\`${t}\``).join('<br>') : '**no test**'} |`);
  }
  lines.push('', '## Open', '', ...OPEN_ROWS.map((r) => `- ${r}`));
  return lines.join('\n');
}
