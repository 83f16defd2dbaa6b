/**
 * What the README and docs name, a user can import (issue 18 item 7): every identifier in a code
 * span of README.md or docs/*.md that some library module exports must be exported by the package
 * too — by `coapsec` or one of its `exports` subpaths — with its types. The entry points' exports
 * are read with the TypeScript compiler, so interfaces and types count as well as values.
 *
 * docs/architecture.md is left out on purpose: it is the map of the internals (where each stage,
 * carrier and helper lives), and names modules a user never imports. Code blocks are covered by
 * test/docs-samples.test.ts and test/package.test.ts, which compile the examples they include
 * against the installed package.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { ROOT } from './support/examples.js';

/** Documents a user reads to learn the API. */
const USER_DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md') && f !== 'architecture.md').map((f) => `docs/${f}`)];

/** Folders whose modules are not library: the command line and the demo resources. */
const NOT_LIBRARY = /^src\/(cli|demo)\//;

function sourcesBelow(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourcesBelow(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The source file behind each `exports` entry of package.json ("./dist/src/x/index.d.ts" → src/x/index.ts). */
function entryPoints(): Map<string, string> {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string | { types: string }> };
  const entries = new Map<string, string>();
  for (const [subpath, target] of Object.entries(manifest.exports)) {
    if (typeof target === 'string') continue; // ./package.json
    entries.set(subpath === '.' ? 'coapsec' : `coapsec/${subpath.slice(2)}`, join(ROOT, target.types.replace(/^\.\/dist\//, '').replace(/\.d\.ts$/, '.ts')));
  }
  return entries;
}

test('every library export that README.md and docs/*.md name is importable from the package', () => {
  const sources = sourcesBelow(join(ROOT, 'src'));
  const program = ts.createProgram(sources, { strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: ['node'] });
  const checker = program.getTypeChecker();
  const exportsOf = (file: string): string[] => {
    const source = program.getSourceFile(file);
    const symbol = source && checker.getSymbolAtLocation(source);
    return symbol ? checker.getExportsOfModule(symbol).map((s) => s.name) : [];
  };

  const entries = entryPoints();
  const importable = new Set<string>();
  for (const [name, file] of entries) {
    const names = exportsOf(file);
    assert.ok(names.length > 0, `${name}: ${relative(ROOT, file)} exports nothing (or is missing)`);
    for (const n of names) importable.add(n);
  }
  const declaredIn = new Map<string, string>();
  for (const file of sources) {
    const path = relative(ROOT, file);
    if (NOT_LIBRARY.test(path)) continue;
    for (const n of exportsOf(file)) if (!declaredIn.has(n)) declaredIn.set(n, path);
  }
  assert.ok(declaredIn.size > 500, `${declaredIn.size} library exports found: the scan works`);

  const missing: string[] = [];
  for (const doc of USER_DOCS) {
    const text = readFileSync(join(ROOT, doc), 'utf8');
    for (const span of text.matchAll(/`([^`\n]+)`/g)) {
      // `Name`, `Name.member`, `name(args)`, `new Name(...)`: the identifier it starts with.
      const name = /^(?:new\s+)?([A-Za-z_$][\w$]*)/.exec(span[1]!)?.[1];
      if (name !== undefined && declaredIn.has(name) && !importable.has(name)) missing.push(`${doc}: \`${name}\` (exported by ${declaredIn.get(name)}, not by ${[...entries.keys()].join(', ')})`);
    }
  }
  assert.deepEqual([...new Set(missing)], []);
});
