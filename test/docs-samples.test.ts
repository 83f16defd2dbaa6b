/**
 * Every TypeScript or JavaScript sample in the README and docs/ is a file under examples/, included
 * verbatim, compiled as a user compiles it (examples/tsconfig.json: strict, importing 'coapsec' by
 * its package name, which resolves through package.json `exports`) and run. So a doc cannot show an
 * API that a user cannot import, or code that does not work.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { EXAMPLES, EXAMPLES_DIR, ROOT, diagnosticsByFile, docFiles, docSamples, exampleFiles, runNode } from './support/examples.js';

test('every code sample in the README and docs/ is an example file, included verbatim', () => {
  const samples = docFiles().flatMap(docSamples);
  assert.ok(samples.length >= 5, 'the README shows samples');
  for (const s of samples) {
    assert.ok(s.example, `${s.doc}:${s.line}: a code sample that no test runs: put it in examples/ and precede its block with <!-- example: examples/NAME -->`);
    assert.equal(s.code, readFileSync(join(ROOT, s.example), 'utf8').trimEnd(), `${s.doc}:${s.line} differs from ${s.example}`);
  }
  const shown = new Set(samples.map((s) => s.example));
  for (const file of exampleFiles()) {
    assert.ok(shown.has(`examples/${file}`), `examples/${file} is in no doc`);
    assert.ok(EXAMPLES[file], `examples/${file}: no expected output in test/support/examples.ts`);
  }
});

test("the README's Library section shows a GET, an Observe, an OSCORE request from a credentials file, a DTLS request and the CommonJS import", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const library = readme.slice(readme.indexOf('## Library'));
  for (const file of ['get.ts', 'observe.ts', 'oscore.ts', 'dtls.ts', 'commonjs.cjs']) {
    assert.ok(library.includes(`<!-- example: examples/${file} -->`), `README Library section lacks examples/${file}`);
  }
  assert.match(library, /ESM-only|ES module only/i);
});

test('the README and docs name specifications by RFC or draft name, not by paths or labels outside the repository', () => {
  for (const doc of [...docFiles(), 'BENCHMARKS.md']) {
    const text = readFileSync(join(ROOT, doc), 'utf8');
    for (const pattern of [/shared\//, /\bseeds?\b/i, /\/work\//, /\b00[0-9]_[0-9a-f]{16}\.txt/]) {
      const hit = pattern.exec(text);
      assert.equal(hit, null, `${doc}: "${hit?.[0]}" at line ${text.slice(0, hit?.index).split('\n').length}`);
    }
  }
});

describe('the examples compile under strict and run', () => {
  let diagnostics = new Map<string, string[]>();
  let compilerOutput = '';
  before(async () => {
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    // Emits even with type errors (noEmitOnError is off): each example then fails on its own.
    compilerOutput = await new Promise<string>((resolve) => {
      execFile(process.execPath, [tsc, '-p', join(EXAMPLES_DIR, 'tsconfig.json'), '--pretty', 'false'], { cwd: ROOT }, (_error, stdout, stderr) => resolve(stdout + stderr));
    });
    diagnostics = diagnosticsByFile(compilerOutput);
  });

  test('no type errors outside the examples (the published declarations compile for a strict user)', () => {
    const elsewhere = [...diagnostics.entries()].filter(([file]) => !EXAMPLES[file]);
    assert.deepEqual(elsewhere, [], compilerOutput);
  });

  for (const [file, expected] of Object.entries(EXAMPLES)) {
    test(`examples/${file}`, async () => {
      assert.deepEqual(diagnostics.get(file) ?? [], [], `examples/${file} does not compile`);
      const script = file.endsWith('.ts') ? join(ROOT, 'dist', 'examples', file.replace(/\.ts$/, '.js')) : join(EXAMPLES_DIR, file);
      const cwd = mkdtempSync(join(tmpdir(), 'coapsec-example-'));
      try {
        const env = (await expected.setup?.(cwd)) ?? {};
        const r = await runNode(script, cwd, env);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, expected.stdout);
      } finally {
        rmSync(cwd, { recursive: true, force: true });
      }
    });
  }
});
