/**
 * `--credentials` with an "edhoc" section on the command line: identities made by `coapsec keygen`,
 * `coapsec serve` answering EDHOC, `get`/`observe` running it (method 3 with P-256 keys, method 0
 * with Ed25519 keys, CCS credentials by kid), the combined request and --no-combined, the server's
 * per-peer grants (4.03), a client the server does not trust (exit 6, the EDHOC error named, nothing
 * sent unprotected), a server restart (the next get runs EDHOC again), and -v's report of the
 * messages and identifiers without any key. `coapsec proxy --credentials` is an EDHOC responder for
 * its own OSCORE layer (the client–proxy context of a route), with the same grants.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { coseKeyFromKeyObject, toHex } from '../src/cose/index.js';
import { edhocInitiatorConfig, loadCredentials } from '../src/credentials/index.js';
import { EdhocClientSecurity, postOverClient } from '../src/edhoc-coap/index.js';
import { coapsec, killChildren, startDaemon, type Daemon } from './support/cli-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'coapsec-cli-edhoc-'));
// Every coapsec process this test starts keeps its state here (spawned with process.env).
process.env.COAPSEC_STATE_DIR = join(dir, 'state');
const SERVING = /serving on coap:\/\/127\.0\.0\.1:(\d+)/;

interface Peer {
  name: string;
  resources: string[];
}

async function keygen(name: string, kid: string, flags: string[]): Promise<void> {
  const r = await coapsec(['keygen', '--name', name, '--out-dir', dir, '--kid', kid, ...flags]);
  assert.equal(r.code, 0, r.stderr);
}

/** NAME.json trusting `peers` (their CCS files beside it). */
function trust(name: string, peers: Peer[]): string {
  const file = join(dir, `${name}.json`);
  const json = JSON.parse(readFileSync(file, 'utf8')) as { edhoc: { peers: unknown[] } };
  json.edhoc.peers = peers.map((p) => ({ name: p.name, ccs: `${p.name}.ccs`, resources: p.resources }));
  writeFileSync(file, JSON.stringify(json));
  return file;
}

/** The private key's secret scalar, as hex, and the PEM body: neither may ever be printed. */
function secrets(name: string): string[] {
  const pem = readFileSync(join(dir, `${name}.key`), 'utf8');
  const d = coseKeyFromKeyObject(createPrivateKey(pem), { includePrivate: true }).d!;
  return [toHex(d), pem.split('\n')[1]!];
}

let gateway: Daemon;
let signer: Daemon;
let files: Record<string, string>;

before(async () => {
  // Method 3 (static DH) with P-256 keys; method 0 (signatures) with Ed25519 keys.
  await keygen('gateway', '01', ['--suite', '2']);
  await keygen('alice', '02', ['--suite', '2']);
  await keygen('bob', '03', ['--suite', '2']);
  await keygen('mallory', '04', ['--suite', '2']);
  await keygen('signer', '05', ['--curve', 'ed25519']);
  await keygen('carol', '06', ['--curve', 'ed25519']);
  const server = [{ name: 'gateway', resources: ['/*'] }];
  files = {
    gateway: trust('gateway', [
      { name: 'alice', resources: ['/*'] },
      { name: 'bob', resources: ['/whoami'] },
    ]),
    alice: trust('alice', server),
    bob: trust('bob', server),
    // Mallory trusts the gateway, which does not know Mallory.
    mallory: trust('mallory', server),
    signer: trust('signer', [{ name: 'carol', resources: ['/*'] }]),
    carol: trust('carol', [{ name: 'signer', resources: ['/*'] }]),
  };
  gateway = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--credentials', files.gateway!, '-v'], SERVING);
  signer = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--credentials', files.signer!], SERVING);
});

after(async () => {
  await gateway?.stop();
  await signer?.stop();
  killChildren();
  rmSync(dir, { recursive: true, force: true });
});

const url = (daemon: Daemon, path: string): string => `coap://127.0.0.1:${daemon.port}${path}`;

test('get over EDHOC method 3 (P-256 CCS by kid), combined request: the server sees "edhoc alice"; -v reports the messages and IDs, never a key', async () => {
  const r = await coapsec(['get', url(gateway, '/whoami'), '--credentials', files.alice!, '-v']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'coap anonymous edhoc alice');
  assert.match(r.stderr, /^EDHOC message_1 → coap:\/\/127\.0\.0\.1:\d+\/\.well-known\/edhoc: \d+ bytes$/m);
  assert.match(r.stderr, /^EDHOC message_2 ← coap:\/\/127\.0\.0\.1:\d+: \d+ bytes$/m);
  assert.match(r.stderr, /^EDHOC message_3 → coap:\/\/127\.0\.0\.1:\d+: \d+ bytes, inside the first OSCORE request \(RFC 9668\)$/m);
  assert.match(r.stderr, /^EDHOC with coap:\/\/127\.0\.0\.1:\d+ \(gateway\): method 3, cipher suite 2, C_I [0-9a-f]+, C_R [0-9a-f]+$/m);
  const ids = /^OSCORE context from EDHOC: Sender ID ([0-9a-f]+), Recipient ID ([0-9a-f]+)$/m.exec(r.stderr);
  assert.ok(ids, r.stderr);
  // RFC 9528 App. A.1: the Initiator's Sender ID is C_R, its Recipient ID C_I.
  const cids = / C_I ([0-9a-f]+), C_R ([0-9a-f]+)$/m.exec(r.stderr)!;
  assert.deepEqual([ids[1], ids[2]], [cids[2], cids[1]]);
  assert.match(r.stderr, /^protection: OSCORE kid=[0-9a-f]+ \(gateway\)$/m);
  // The server's -v line for the same session.
  await gateway.waitFor(/EDHOC with alice: method 3, cipher suite 2, C_I [0-9a-f]+, C_R [0-9a-f]+; OSCORE Sender ID [0-9a-f]+, Recipient ID [0-9a-f]+/);
  for (const secret of [...secrets('alice'), ...secrets('gateway')]) {
    assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret) && !gateway.stderr().includes(secret), 'no key material in the output');
  }
});

test('--no-combined sends message_3 in its own POST, then the OSCORE request', async () => {
  const r = await coapsec(['get', url(gateway, '/whoami'), '--credentials', files.alice!, '--no-combined', '-v']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'coap anonymous edhoc alice');
  assert.match(r.stderr, /^EDHOC message_3 → coap:\/\/127\.0\.0\.1:\d+\/\.well-known\/edhoc: \d+ bytes, in its own POST$/m);
  assert.doesNotMatch(r.stderr, /inside the first OSCORE request/);
});

test('observe over EDHOC: EDHOC runs before the registration, notifications are OSCORE-protected', async () => {
  const r = await coapsec(['observe', url(gateway, '/time'), '--credentials', files.alice!, '--count', '2', '-v'], { timeout: 15_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 2, r.stdout);
  assert.match(r.stderr, /^EDHOC message_3 → .*in its own POST$/m, 'the registration cannot carry message_3: establish() first');
  assert.equal([...r.stderr.matchAll(/^protection: OSCORE kid=[0-9a-f]+ \(gateway\)$/gm)].length, 2, r.stderr);
});

test('get over EDHOC method 0 (Ed25519 CCS): signatures both ways', async () => {
  const r = await coapsec(['get', url(signer, '/whoami'), '--credentials', files.carol!, '-v']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'coap anonymous edhoc carol');
  assert.match(r.stderr, /\(signer\): method 0, cipher suite 0,/);
});

test('a client outside its grant gets a protected 4.03; inside it, the resource', async () => {
  const refused = await coapsec(['get', url(gateway, '/time'), '--credentials', files.bob!, '-v']);
  assert.equal(refused.code, 4, refused.stderr);
  assert.match(refused.stderr, /4\.03/);
  assert.match(refused.stdout, /edhoc bob is not granted this resource/);
  assert.match(refused.stderr, /^protection: OSCORE kid=[0-9a-f]+ \(gateway\)$/m, 'the refusal is protected');
  const allowed = await coapsec(['get', url(gateway, '/whoami'), '--credentials', files.bob!]);
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.equal(allowed.stdout.trim(), 'coap anonymous edhoc bob');
});

test('a client the server does not trust: exit 6, the EDHOC error named, no stack trace, nothing sent unprotected', async () => {
  for (const combined of [[], ['--no-combined']]) {
    const r = await coapsec(['get', url(gateway, '/whoami'), '--credentials', files.mallory!, ...combined]);
    assert.equal(r.code, 6, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^coapsec: EDHOC with coap:\/\/127\.0\.0\.1:\d+ failed: .*EDHOC error.*; nothing was sent unprotected$/m);
    assert.doesNotMatch(r.stderr, /\n\s+at |node:internal/);
  }
});

test('a URI no EDHOC peer and no OSCORE context covers is refused (exit 6), not sent plain', async () => {
  const narrow = trust('alice', [{ name: 'gateway', resources: ['/sensors/*'] }]);
  try {
    const r = await coapsec(['get', url(gateway, '/whoami'), '--credentials', narrow]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /no edhoc\.peers entry has a resource matching it/);
  } finally {
    trust('alice', [{ name: 'gateway', resources: ['/*'] }]);
  }
});

test('after a server restart the next get runs EDHOC again and works', async () => {
  const port = gateway.port;
  await gateway.stop();
  gateway = await startDaemon(['serve', '--bind', `127.0.0.1:${port}`, '--credentials', files.gateway!, '-v'], SERVING);
  const r = await coapsec(['get', url(gateway, '/whoami'), '--credentials', files.alice!, '-v']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'coap anonymous edhoc alice');
  assert.match(r.stderr, /^EDHOC message_1 /m);
});

test('proxy --credentials: the client–proxy layer of a route made by EDHOC, the origin reached; outside the grant 4.03', async () => {
  const origin = await startDaemon(['serve', '--bind', '127.0.0.1:0'], SERVING);
  const proxy = await startDaemon(['proxy', '--bind', '127.0.0.1:0', '--forward', '--allow-destination', '127.0.0.1', '--credentials', files.gateway!, '-v'], /proxy on coap:\/\/127\.0\.0\.1:(\d+)/);
  const client = new CoapClient();
  try {
    const proxyUri = `coap://127.0.0.1:${proxy.port}`;
    const hop = async (name: string) => {
      const edhoc = new EdhocClientSecurity({ initiator: edhocInitiatorConfig(loadCredentials(files[name]!).edhoc!, proxyUri), post: postOverClient(client, proxyUri), combined: false });
      return { uri: proxyUri, context: await edhoc.establish() };
    };
    const alice = await client.request({ method: 'GET', uri: url(origin, '/whoami'), via: [await hop('alice')] });
    assert.equal(alice.code, 0x45, alice.text());
    assert.equal(alice.text(), 'coap anonymous', 'the origin saw a plain request from the proxy');
    assert.deepEqual(alice.context.oscore?.map((layer) => layer.peer), ['gateway'], 'the response came back under the EDHOC-made proxy layer');
    await proxy.waitFor(/EDHOC with alice: method 3/);
    // Bob may use /whoami only (a path pattern: on any origin, the proxied one too).
    const bob = await client.request({ method: 'GET', uri: url(origin, '/time'), via: [await hop('bob')] });
    assert.equal(bob.code, 0x83, bob.text());
    assert.match(bob.text(), /edhoc bob is not granted this resource/);
  } finally {
    await client.close();
    await proxy.stop();
    await origin.stop();
  }
});
