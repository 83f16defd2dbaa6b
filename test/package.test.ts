/**
 * The package as a user gets it: `npm pack` (in a copy of the repository, so this repository's
 * dist/ is never rebuilt under the other tests), the tarball's contents, `npm install` of the
 * tarball in an empty project (no install script, no warning), and the README samples plus every
 * `exports` subpath compiled there under `strict` with the project's own tsconfig, and run.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { EXAMPLES, EXAMPLES_DIR, ROOT, diagnosticsByFile, runNode } from './support/examples.js';

const COPIED = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'LICENSE', 'bin', 'src', 'docs', 'examples', 'scripts'];

/** `exports` subpaths and one export each must have, at run time and in the declarations. */
const SUBPATHS: Record<string, string> = {
  coapsec: 'CoapClient',
  'coapsec/oscore': 'deriveContext',
  'coapsec/dtls': 'DtlsClient',
  'coapsec/credentials': 'parseCredentials',
  'coapsec/trust-anchor': 'deriveKey',
  'coapsec/proxy': 'ForwardProxy',
  'coapsec/cose': 'encodeCcs',
  'coapsec/edhoc': 'EdhocInitiator',
  'coapsec/edhoc-coap': 'EdhocServer',
  'coapsec/group': 'GroupClient',
  'coapsec/group-oscore': 'GroupManager',
  'coapsec/kudos': 'updateCtx',
  'coapsec/broker': 'PubSubBroker',
  'coapsec/transport': 'openTransport',
  'coapsec/pubsub-protection': 'PublicationVerifier',
  'coapsec/browser': 'BrowserCoapClient',
  'coapsec/store': 'openContextStore',
  'coapsec/ace': 'sealToken',
  'coapsec/group-manager': 'OnlineGroupManager',
  'coapsec/metrics': 'ServerMetrics',
};

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: readonly string[], cwd: string): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, maxBuffer: 64 << 20, env: { ...process.env, npm_config_update_notifier: 'false' } }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function filesBelow(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(join(dir, f)).isFile());
}

let work = '';
let tarball = '';
let unpacked = '';
let app = '';
let install: Ran;
let compileOutput = '';

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'coapsec-package-'));
  const repo = join(work, 'repo');
  for (const entry of COPIED) cpSync(join(ROOT, entry), join(repo, entry), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(repo, 'node_modules'));
  const packed = await run('npm', ['pack', '--json', '--pack-destination', work], repo);
  assert.equal(packed.code, 0, `npm pack failed: ${packed.stderr}`);
  tarball = join(work, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename);
  assert.equal(readFileSync(join(repo, 'package.json'), 'utf8'), readFileSync(join(ROOT, 'package.json'), 'utf8'), 'postpack restores package.json');

  unpacked = join(work, 'unpacked');
  mkdirSync(unpacked);
  const untar = await run('tar', ['-xzf', tarball, '-C', unpacked], work);
  assert.equal(untar.code, 0, untar.stderr);

  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'coapsec-user', version: '1.0.0', private: true, type: 'module' }, null, 2));
  install = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], app);
  assert.equal(install.code, 0, `npm install failed: ${install.stderr}`);

  const src = join(app, 'src');
  mkdirSync(src);
  for (const file of Object.keys(EXAMPLES)) cpSync(join(EXAMPLES_DIR, file), join(src, file));
  writeFileSync(
    join(src, 'subpaths.ts'),
    Object.entries(SUBPATHS)
      .map(([path, name], i) => `import { ${name} as export${i} } from '${path}';\nconsole.log('${path}', typeof export${i});`)
      .join('\n') + '\n',
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')], rootDir: 'src', outDir: 'out' }, include: ['src'] }, null, 2),
  );
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const compiled = await run(process.execPath, [tsc, '-p', app, '--pretty', 'false'], app);
  compileOutput = compiled.stdout + compiled.stderr;
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the tarball: built output, declarations, LICENSE, README, docs and examples; no TypeScript sources', () => {
  const files = filesBelow(join(unpacked, 'package'));
  for (const required of ['LICENSE', 'README.md', 'package.json', 'bin/coapsec', 'dist/src/index.js', 'dist/src/index.d.ts', 'docs/architecture.md', 'docs/credentials.md', 'examples/get.ts']) {
    assert.ok(files.includes(required), `${required} is missing from the tarball`);
  }
  assert.deepEqual(files.filter((f) => f.startsWith('src/') || f.startsWith('dist/test')), []);
  assert.match(readFileSync(join(unpacked, 'package', 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0, January 2004[\s\S]*END OF TERMS AND CONDITIONS/);
});

test('every source map in the tarball carries the sources it names (none points at a file not shipped)', () => {
  const maps = filesBelow(join(unpacked, 'package')).filter((f) => f.endsWith('.map'));
  assert.ok(maps.length > 50, `${maps.length} source maps`);
  for (const file of maps) {
    const map = JSON.parse(readFileSync(join(unpacked, 'package', file), 'utf8')) as { sources: string[]; sourcesContent?: Array<string | null> };
    assert.equal(map.sourcesContent?.length, map.sources.length, `${file}: sourcesContent`);
    assert.ok(map.sourcesContent!.every((s) => typeof s === 'string' && s.length > 0), `${file}: a source without content`);
  }
});

test('the packed package.json has no install-time script; installing the tarball prints no warning', () => {
  const manifest = JSON.parse(readFileSync(join(unpacked, 'package', 'package.json'), 'utf8')) as { scripts?: Record<string, string>; license: string };
  for (const script of ['prepare', 'preinstall', 'install', 'postinstall']) assert.equal(manifest.scripts?.[script], undefined, `scripts.${script} is packed`);
  assert.equal(manifest.license, 'Apache-2.0');
  assert.doesNotMatch(install.stdout + install.stderr, /warn|install-scripts|ERR/i);
});

test('in the installed package, the README samples and every exports subpath compile under strict', () => {
  const diagnostics = diagnosticsByFile(compileOutput);
  assert.deepEqual([...diagnostics.keys()].filter((f) => f !== 'oscore.ts'), [], compileOutput);
  assert.deepEqual(diagnostics.get('oscore.ts') ?? [], [], 'examples/oscore.ts does not compile against the packed declarations');
});

test('every exports subpath resolves at run time', async () => {
  const r = await runNode(join(app, 'out', 'subpaths.js'), app, {});
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), Object.keys(SUBPATHS).map((path) => `${path} function`));
});

for (const [file, expected] of Object.entries(EXAMPLES)) {
  test(`installed: examples/${file} runs`, async () => {
    const script = file.endsWith('.ts') ? join(app, 'out', file.replace(/\.ts$/, '.js')) : join(app, 'src', file);
    const cwd = mkdtempSync(join(work, 'run-'));
    const env = (await expected.setup?.(cwd)) ?? {};
    const r = await runNode(script, cwd, env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, expected.stdout);
  });
}
