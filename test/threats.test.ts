/**
 * Issue 7: the seeds' threat model as an executable suite. Every attack runs on the lockstep
 * network with the adversary at the forward proxy (test/threat-report.ts), under no protection,
 * OSCORE end to end and nested OSCORE; the assertions are on what the applications accepted.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { END_TO_END, EXTRA_TESTS, PROTECTIONS, rowTestName, runKey, THREAT_ROWS, type Scenario } from '../src/attack/report.js';
import type { CaseOptions, RunResult } from './threat-report.js';

/**
 * The runs execute in a child process: the lockstep network resolves millions of promises, which
 * the test runner's instrumentation slows down by an order of magnitude.
 */
async function child<T>(expression: string): Promise<T> {
  const module = new URL('./threat-report.js', import.meta.url).href;
  const script = `import * as m from ${JSON.stringify(module)}; const r = await (${expression}); process.stdout.write(JSON.stringify(r instanceof Map ? Object.fromEntries(r) : r));`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { maxBuffer: 1 << 26 });
  return JSON.parse(stdout) as T;
}
const runCase = (scenario: Scenario, protection: string, attack: string, options: CaseOptions = {}) => child<RunResult>(`m.runCase(${JSON.stringify(scenario)}, ${JSON.stringify(protection)}, ${JSON.stringify(attack)}, ${JSON.stringify(options)})`);
let matrix: Promise<Record<string, RunResult>> | undefined;
const runRow = async (_row: unknown) => {
  matrix ??= child<Record<string, RunResult>>('m.runMatrix()');
  return new Map(Object.entries(await matrix));
};

/** Every column with an end-to-end OSCORE layer (C–S), hop-by-hop DTLS underneath or not. */
const PROTECTED = END_TO_END;
/** Rows whose attack has no effect on the upstream leg even without protection (reported as is). */
const NOT_EFFECTIVE_WITHOUT_PROTECTION = new Set(['token', 'delay-policy']);

for (const row of THREAT_ROWS) {
  test(rowTestName(row), async () => {
    const results = await runRow(row);
    for (const run of row.runs) {
      const none = results.get(runKey(run, 'none'))!;
      const passive = run.attack === 'eavesdrop' || run.attack === 'traffic-analysis';
      if (!passive) for (const p of PROTECTIONS) assert.ok(results.get(runKey(run, p))!.attackMessages > 0, `${run.scenario} ${p}: the attack acted`);
      if (row.id === 'delay-no-policy') {
        // The other direction of the delay result: OSCORE alone does not stop a late actuation.
        for (const p of ['none', ...PROTECTED] as const) assert.equal(results.get(runKey(run, p))!.verdict, 'undetected');
        continue;
      }
      if (!row.required) {
        // Reported honestly: withholding and traffic analysis are not mitigated by OSCORE.
        if (run.attack === 'drop') for (const p of PROTECTED) assert.equal(results.get(runKey(run, p))!.verdict, 'withheld');
        if (run.attack === 'traffic-analysis') for (const p of PROTECTED) assert.equal(results.get(runKey(run, p))!.verdict, 'leaked');
        continue;
      }
      for (const p of PROTECTED) {
        const r = results.get(runKey(run, p))!;
        assert.ok(!['undetected', 'leaked'].includes(r.verdict), `${run.scenario} ${run.attack} under ${p}: ${r.verdict} — ${r.detail}`);
      }
      if (!NOT_EFFECTIVE_WITHOUT_PROTECTION.has(row.id)) {
        const ok = row.runs.some((x) => ['undetected', 'leaked'].includes(results.get(runKey(x, 'none'))!.verdict));
        assert.ok(ok, `without protection the attack must succeed in some scenario (here: ${none.verdict} — ${none.detail})`);
      }
    }
  });
}

test(EXTRA_TESTS[1]!.name, async () => {
  for (const p of ['none', ...PROTECTED] as const) {
    const without = await runCase('valve', p, 'delay');
    assert.equal(without.verdict, 'undetected', `${p} without the policy: ${without.detail}`);
    assert.match(without.detail, /executed "open" \d+ ms late/);
    const withPolicy = await runCase('valve', p, 'delay', { freshness: true, attack: { skip: 1 } });
    assert.equal(withPolicy.verdict, 'detected', `${p} with the policy: ${withPolicy.detail}`);
    assert.match(withPolicy.detail, /^server: Echo freshness check refused the request \(4\.01 \+ new Echo\), valve unchanged/);
    assert.doesNotMatch(withPolicy.detail, /end-to-end verification failed/);
  }
});

/** Randomized attack messages (the `fuzz` attack) per scenario; /valve with its freshness policy. */
const FUZZ: Record<Scenario, CaseOptions> = {
  alarm: { rounds: 150, pause: 300 },
  valve: { rounds: 10, pause: 11_000, freshness: true },
  observe: { rounds: 30, pause: 300 },
  caching: { rounds: 8, pause: 6_000 },
};
const SEEDS = 18;

const fuzz = (scenarios: Scenario[]) => child<{ messages: number; falseAccepts: string[] }>(`m.runFuzz(${JSON.stringify(scenarios)}, ${JSON.stringify(FUZZ)}, ${SEEDS})`);

test(EXTRA_TESTS[0]!.name, async () => {
  const { messages, falseAccepts } = await fuzz(['alarm', 'valve', 'caching']);
  assert.ok(messages >= 10_000, `only ${messages} attack messages`);
  assert.deepEqual(falseAccepts, []);
  // The same randomized attacks succeed without protection, in every scenario.
  for (const scenario of Object.keys(FUZZ) as Scenario[]) {
    let succeeded = 0;
    for (let seed = 1; seed <= 3; seed++) if ((await runCase(scenario, 'none', 'fuzz', { ...FUZZ[scenario], seed })).verdict === 'undetected') succeeded++;
    assert.ok(succeeded > 0, `${scenario}: the randomized attacks never succeeded without protection`);
  }
});

// This test found a real gap: a delayed first response (no Partial IV) was accepted after newer
// notifications ("2,1,4,5,6"); RFC 8613 §4.1.3.5.2 makes it the oldest, and the client now refuses it.
test('randomized: Observe scenario, zero false accepts under OSCORE and nested OSCORE', async () => {
  const { falseAccepts } = await fuzz(['observe']);
  assert.deepEqual(falseAccepts, []);
});

// Issue 28, the seeds' point (000 §1–§2, 002 §1): hop-by-hop DTLS puts the proxy inside both
// sessions, so everything it does succeeds exactly as if there were no protection at all.
test('hop-by-hop DTLS: the proxy reads and forges as without protection (every verdict equals the unprotected one)', async () => {
  const results = await runRow(undefined);
  let forgeries = 0;
  for (const row of THREAT_ROWS) {
    for (const run of row.runs) {
      const none = results.get(runKey(run, 'none'))!;
      const dtls = results.get(runKey(run, 'dtls'))!;
      assert.equal(dtls.verdict, none.verdict, `${row.id} ${run.scenario} ${run.attack}: under DTLS ${dtls.verdict} — ${dtls.detail}; unprotected ${none.verdict} — ${none.detail}`);
      assert.doesNotMatch(dtls.detail, /DTLS record layer/, `${row.id}: the proxy's own changes never reach a DTLS check`);
      if (dtls.verdict === 'undetected' && row.required) forgeries++;
    }
  }
  assert.ok(forgeries >= 20, `only ${forgeries} REQUIRED runs with the proxy's modification accepted under DTLS`);
  const eavesdrop = THREAT_ROWS.find((r) => r.id === 'eavesdrop')!.runs[0]!;
  assert.equal(results.get(runKey(eavesdrop, 'dtls'))!.verdict, 'leaked');
  assert.match(results.get(runKey(eavesdrop, 'dtls'))!.detail, /P read "open", "close", "valve"/);
});

// What DTLS does stop: the same attacks by someone on the P–S wire who is not the proxy.
test('hop-by-hop DTLS: an on-path attacker outside the proxy is stopped by the record layer (except delay and traffic analysis)', async () => {
  const results = await runRow(undefined);
  let recordLayer = 0;
  for (const row of THREAT_ROWS) {
    for (const run of row.runs) {
      const r = results.get(runKey(run, 'dtls-outsider'))!;
      if (row.id === 'delay-no-policy') {
        // A held-back genuine record is still accepted late: DTLS has no freshness either.
        assert.equal(r.verdict, 'undetected', r.detail);
        continue;
      }
      if (run.attack === 'traffic-analysis') {
        assert.equal(r.verdict, 'leaked', r.detail);
        continue;
      }
      assert.ok(!['undetected', 'leaked'].includes(r.verdict), `${row.id} ${run.scenario} ${run.attack} outside P: ${r.verdict} — ${r.detail}`);
      if (/DTLS record layer discarded/.test(r.detail)) recordLayer++;
    }
  }
  assert.ok(recordLayer >= 20, `the DTLS record layer refused records in only ${recordLayer} runs`);
});
