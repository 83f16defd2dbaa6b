/**
 * The code samples of the README and docs/, kept as files under examples/ (the docs include them
 * verbatim), and how to run each one and what it must print. Shared by test/docs-samples.test.ts
 * (in this repository) and test/package.test.ts (from an installed tarball).
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeUdpPort } from './cli-harness.js';
import { generateEdhocIdentity } from '../../src/credentials/edhoc-keygen.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const EXAMPLES_DIR = join(ROOT, 'examples');

export interface ExampleRun {
  /** Writes the files the example reads into its working directory; returns its environment. */
  setup?(cwd: string): Promise<Record<string, string>>;
  /** What it prints on stdout. */
  stdout: RegExp;
}


const SECRET = '0102030405060708090a0b0c0d0e0f10';
const SALT = '9e7ca92223786340';

/** A matching pair: the client (Sender ID 01) is "alice" on the server, whose Sender ID is empty. */
async function writeCredentials(cwd: string): Promise<Record<string, string>> {
  const port = await freeUdpPort();
  const client = { oscore: [{ match: `coap://127.0.0.1:${port}/*`, context: { masterSecret: SECRET, masterSalt: SALT, senderId: '01', recipientId: '' } }] };
  const server = { recipients: { '01': { name: 'alice', context: { masterSecret: SECRET, masterSalt: SALT, senderId: '' } } } };
  writeFileSync(join(cwd, 'client.json'), JSON.stringify(client, null, 2));
  writeFileSync(join(cwd, 'server.json'), JSON.stringify(server, null, 2));
  return { COAP_PORT: String(port) };
}

/** Two EDHOC identities as `coapsec keygen` writes them, each trusting the other (docs/credentials.md). */
async function writeEdhocIdentities(cwd: string): Promise<Record<string, string>> {
  const pair = [
    ['gateway', 'alice'],
    ['alice', 'gateway'],
  ] as const;
  pair.forEach(([name], i) => {
    const identity = generateEdhocIdentity('p-256', name, Uint8Array.of(i + 1));
    writeFileSync(join(cwd, `${name}.key`), identity.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, { mode: 0o600 });
    writeFileSync(join(cwd, `${name}.ccs`), identity.ccs);
  });
  for (const [name, peer] of pair) {
    const edhoc = { identity: { privateKey: `${name}.key`, ccs: `${name}.ccs`, idCred: 'kid' }, peers: [{ name: peer, ccs: `${peer}.ccs`, resources: ['/*'] }] };
    writeFileSync(join(cwd, `${name}.json`), JSON.stringify({ edhoc }, null, 2));
  }
  return {};
}

export const EXAMPLES: Record<string, ExampleRun> = {
  'get.ts': { stdout: /^2\.05 Content 21\.5\n$/ },
  'observe.ts': { stdout: /^20\n21\n22\n$/ },
  'oscore.ts': { setup: writeCredentials, stdout: /^2\.05 Content hello alice\n$/ },
  'context-store.ts': { setup: writeCredentials, stdout: /^2\.05 Content hello alice\n$/ },
  'dtls.ts': { stdout: /^2\.05 Content client1 TLS_PSK_WITH_AES_128_CCM_8\n$/ },
  'commonjs.cjs': { stdout: /^2\.05 Content hi\n$/ },
  'edhoc.ts': { stdout: /^client 27 37 16\n$/ },
  'edhoc-credentials.ts': { setup: writeEdhocIdentities, stdout: /^2\.05 Content hello alice\n$/ },
  'edhoc-coap.ts': { stdout: /^2\.05 Content hello client\nEDHOC sessions: 1, server contexts: 1\n$/ },
  'edhoc-proxies.ts': { stdout: /^2\.05 Content 0\nproxy-1 > proxy-2 > server\n$/ },
  'group-oscore.ts': { stdout: /^s1: on\ns2: on\ns3: on\n$/ },
  'cacheable-oscore.ts': { stdout: /^c1: firmware v1 \(request 1\)\nc2: firmware v1 \(request 1\)\nc3: firmware v1 \(request 1\)\norigin requests: 1, cache hits: 2\n$/ },
  'group-proxy.ts': { stdout: /^s1: on \(signed by s1, relayed from server 1\)\ns2: on \(signed by s2, relayed from server 2\)\ns3: on \(signed by s3, relayed from server 3\)\n$/ },
  'reverse-proxy.ts': { stdout: /^2\.05 Content 21\.5\n$/ },
  'cross-transport-proxy.ts': { stdout: /^2\.05 Content 21\.5 \(stream → datagram\)\n$/ },
  'group-manager.ts': { stdout: /^bob reads alice: true, carol reads alice: true\nkey generation 1: bob reads alice: true, carol reads alice: false\n$/ },
  'trust-anchor.ts': { stdout: /^2\.05 Content DK\.ta1\.alice\.1\.[0-9a-f]{32}\n$/ },
};

/** The files of examples/ that are samples (not its tsconfig). */
export function exampleFiles(): string[] {
  return readdirSync(EXAMPLES_DIR).filter((f) => /\.(ts|cjs|mjs|js)$/.test(f)).sort();
}

export interface DocSample {
  doc: string;
  line: number;
  /** The example file named by the `<!-- example: examples/NAME -->` line before the block. */
  example: string | undefined;
  code: string;
}

const FENCE = /^```(ts|typescript|js|javascript|cjs|mjs)\s*$/;
const MARKER = /^<!-- example: (examples\/[\w.-]+) -->$/;

/** The TypeScript and JavaScript blocks of a markdown file (path relative to ROOT). */
export function docSamples(doc: string): DocSample[] {
  const lines = readFileSync(join(ROOT, doc), 'utf8').split('\n');
  const samples: DocSample[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!FENCE.test(lines[i]!)) continue;
    const end = lines.indexOf('```', i + 1);
    if (end < 0) throw new Error(`${doc}:${i + 1}: code block never closed`);
    let before = i - 1;
    while (before >= 0 && lines[before]!.trim() === '') before--;
    const marker = before >= 0 ? MARKER.exec(lines[before]!.trim()) : null;
    samples.push({ doc, line: i + 1, example: marker?.[1], code: lines.slice(i + 1, end).join('\n') });
    i = end;
  }
  return samples;
}

/** README.md and every markdown file under docs/. */
export function docFiles(): string[] {
  return ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node file` in `cwd`; kills it after `limit` ms. */
export function runNode(file: string, cwd: string, env: Record<string, string>, limit = 15_000): Promise<Finished> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [file], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      stderr += `\n(killed after ${limit} ms)`;
    }, limit);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** tsc's diagnostics (`--pretty false`), by file name relative to the project. */
export function diagnosticsByFile(output: string): Map<string, string[]> {
  const byFile = new Map<string, string[]>();
  for (const line of output.split('\n')) {
    const m = /^(.+?)\(\d+,\d+\): error /.exec(line);
    if (!m) continue;
    const file = m[1]!.replace(/\\/g, '/').split('/').pop()!;
    byFile.set(file, [...(byFile.get(file) ?? []), line]);
  }
  return byFile;
}
