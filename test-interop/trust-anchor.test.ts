/**
 * The trust-anchor modes end to end with three processes on loopback: `coapsec trust-anchor`
 * (TA, over OSCORE), `coapsec serve --trust-anchor` (RS) and the client (`coapsec ta-request` +
 * `coapsec get --ta-credential`, or Debian's unmodified coap-client-openssl with -u/-k), for both
 * modes and every refusal of issue 9.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { keyId } from '../src/trust-anchor/counters.js';
import { decodeMacCert, encodeMacCert } from '../src/trust-anchor/maccert.js';
import { coapsec, COAPSEC, freePort, HOST, ROOT, run, startCoapsecServer, stop, stopAll, which, type Daemon } from './support.js';
import { generatePrivateKey, generateKeyPairOn, CoseCurve } from '../src/cose/index.js';

const LIBCOAP = which('coap-client-openssl');
const K_RS_TA = randomBytes(32);
const K_RS2_TA = randomBytes(16);
let dir: string;
let ta: ChildProcess;
let taOutput = '';
let taPort: number;
let rs: Daemon;
let dtlsPort: number;
const clientCreds: Record<string, string> = {};
let taConfig: string;

const secrets: Record<string, string> = { alice: randomBytes(16).toString('hex'), bob: randomBytes(16).toString('hex'), admin: randomBytes(16).toString('hex') };
const ids: Record<string, string> = { alice: '01', bob: '02', admin: '03' };

function writeJson(name: string, value: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify(value, null, 2));
  return p;
}

async function startTa(configPath: string): Promise<void> {
  ta = spawn(process.execPath, [COAPSEC, 'trust-anchor', '--config', configPath, '-v'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const onData = (b: Buffer): void => {
    taOutput += b.toString();
  };
  ta.stdout!.on('data', onData);
  ta.stderr!.on('data', onData);
  const deadline = Date.now() + 10_000;
  while (!/serving on coap:\/\//.test(taOutput)) {
    if (Date.now() > deadline || ta.exitCode !== null) throw new Error(`trust anchor did not start:\n${taOutput}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const taUri = (): string => `coap://${HOST}:${taPort}`;
const rsUri = (path = '/whoami'): string => `coaps://${HOST}:${dtlsPort}${path}`;

async function request(who: string, out: string, mode: 'dk' | 'apk' = 'dk', rsName = 'rs1') {
  return coapsec(['ta-request', '--ta', taUri(), '--rs', rsName, '--credentials', clientCreds[who]!, '--out', join(dir, out), '--mode', mode], { timeout: 20_000 });
}

async function get(credFile: string) {
  return coapsec(['get', '--timeout', '8', '--ta-credential', join(dir, credFile), rsUri()], { timeout: 20_000 });
}

const cred = (file: string): Record<string, string | number> => JSON.parse(readFileSync(join(dir, file), 'utf8'));

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coapsec-ta-'));
  taPort = await freePort();
  dtlsPort = await freePort();
  const rsKey = generateKeyPairOn(CoseCurve.P256);
  writeFileSync(join(dir, 'rs.key.pem'), rsKey.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(dir, 'rs.pub.pem'), rsKey.publicKey.export({ type: 'spki', format: 'pem' }));
  // OSCORE: the TA knows its clients by Recipient ID; each client has a context for the TA's URI.
  writeJson('ta-credentials.json', {
    stateDirectory: 'ta-oscore-state',
    recipients: Object.fromEntries(Object.keys(ids).map((n) => [ids[n], { name: n, context: { masterSecret: { hex: secrets[n] }, senderId: 'ff' } }])),
  });
  for (const n of Object.keys(ids)) {
    clientCreds[n] = writeJson(`${n}-credentials.json`, {
      stateDirectory: `${n}-oscore-state`,
      oscore: [{ match: `coap://${HOST}:${taPort}/*`, context: { masterSecret: { hex: secrets[n] }, senderId: ids[n], recipientId: 'ff' } }],
    });
  }
  // rs2's counter is already at 2^32 - 1: exhausted.
  writeJson('ta-counters.json', { rs2: { last: 0xffffffff, keyId: keyId(K_RS2_TA) } });
  const rsPlainPort = await freePort();
  const config = writeJson('ta.json', {
    $comment: 'trust anchor of the interop test',
    id: 'ta1',
    bind: `${HOST}:${taPort}`,
    credentials: 'ta-credentials.json',
    stateFile: 'ta-counters.json',
    resourceServers: {
      rs1: { key: `0x${K_RS_TA.toString('hex')}`, publicKey: 'rs.pub.pem', revocationUri: `coap://${HOST}:${rsPlainPort}/ta/revoke` },
      rs2: { key: `0x${K_RS2_TA.toString('hex')}` },
    },
    policy: { alice: ['rs1', 'rs2'], bob: [], admin: ['*'] },
    administrators: ['admin'],
  });
  taConfig = config;
  await startTa(config);
  rs = await startCoapsecServer([
    '--dtls-bind',
    `${HOST}:${dtlsPort}`,
    '--trust-anchor',
    `ta1=0x${K_RS_TA.toString('hex')},window=32`,
    '--rpk',
    join(dir, 'rs.key.pem'),
    '--ta-window-file',
    join(dir, 'rs-windows.json'),
  ]);
  // startCoapsecServer chose its own --bind port; point revocations there.
  if (rs.port !== rsPlainPort) {
    await stop(ta);
    taOutput = '';
    const c = JSON.parse(readFileSync(config, 'utf8'));
    c.resourceServers.rs1.revocationUri = `coap://${HOST}:${rs.port}/ta/revoke`;
    writeFileSync(config, JSON.stringify(c));
    await startTa(config);
  }
});

after(async () => {
  if (ta) await stop(ta);
  await stopAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('DerivedKey mode, three processes', () => {
  it('TA issues nonce and key; the client reaches the RS; the same nonce again is refused', { timeout: 60_000 }, async () => {
    const r = await request('alice', 'alice-dk.json');
    assert.equal(r.code, 0, r.stderr);
    const c = cred('alice-dk.json');
    assert.match(String(c['identity']), /^DK\.ta1\.alice\.\d+\.[0-9a-f]{32}$/);
    assert.equal(String(c['key']).length, 32);
    const ok = await get('alice-dk.json');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), `coaps psk ${c['identity']} TLS_PSK_WITH_AES_128_CCM_8`);
    const replay = await get('alice-dk.json');
    assert.notEqual(replay.code, 0);
    assert.match(replay.stderr, /unknown_psk_identity/);
    console.log(`# DK replay refused: ${replay.stderr.trim()}`);
  });
  it('a revoked sequence number is refused', { timeout: 60_000 }, async () => {
    assert.equal((await request('alice', 'alice-dk-rev.json')).code, 0);
    const seq = cred('alice-dk-rev.json')['sequence'];
    const rev = await coapsec(['ta-request', '--ta', taUri(), '--rs', 'rs1', '--credentials', clientCreds['admin']!, '--revoke', String(seq)], { timeout: 20_000 });
    assert.equal(rev.code, 0, rev.stderr);
    assert.match(rev.stdout, /revoked rs1 sequence \d+: revoked/);
    const g = await get('alice-dk-rev.json');
    assert.notEqual(g.code, 0);
    assert.match(g.stderr, /unknown_psk_identity/);
  });
  it('only administrators may revoke', { timeout: 30_000 }, async () => {
    const rev = await coapsec(['ta-request', '--ta', taUri(), '--rs', 'rs1', '--credentials', clientCreds['alice']!, '--revoke', '1'], { timeout: 20_000 });
    assert.equal(rev.code, 4);
    assert.match(rev.stderr, /4\.03/);
  });
  it('a sequence number left of the window (32) is refused', { timeout: 120_000 }, async () => {
    assert.equal((await request('alice', 'alice-old.json')).code, 0);
    // 32 more credentials; the last one used moves the window past the first.
    for (let i = 0; i < 32; i++) assert.equal((await request('alice', 'alice-newer.json')).code, 0);
    assert.equal((await get('alice-newer.json')).code, 0);
    const g = await get('alice-old.json');
    assert.notEqual(g.code, 0);
    assert.match(g.stderr, /unknown_psk_identity/);
  });
  it('an unknown TA id is refused', { timeout: 30_000 }, async () => {
    const c = cred('alice-dk.json');
    writeJson('unknown-ta.json', { ...c, identity: String(c['identity']).replace('DK.ta1.', 'DK.ta9.') });
    const g = await get('unknown-ta.json');
    assert.notEqual(g.code, 0);
    assert.match(g.stderr, /unknown_psk_identity/);
  });
  it('an unauthorized client is refused by the TA (4.03)', { timeout: 30_000 }, async () => {
    const r = await request('bob', 'bob.json');
    assert.equal(r.code, 4);
    assert.match(r.stderr, /4\.03 Forbidden/);
  });
  it('an exhausted counter is reported (5.03), not wrapped', { timeout: 30_000 }, async () => {
    const r = await request('alice', 'alice-rs2.json', 'dk', 'rs2');
    assert.equal(r.code, 5);
    assert.match(r.stderr, /5\.03.*exhausted/);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'ta-counters.json'), 'utf8')).rs2.last, 0xffffffff);
  });
  it('sequence numbers are persisted by the TA and the windows by the RS', () => {
    const counters = JSON.parse(readFileSync(join(dir, 'ta-counters.json'), 'utf8'));
    assert.ok(counters.rs1.last >= 35);
    const windows = JSON.parse(readFileSync(join(dir, 'rs-windows.json'), 'utf8'));
    assert.equal(windows.ta1.size, 32);
    assert.ok(windows.ta1.right > 0);
  });
});

describe('AuthorizedPublicKey mode, three processes', () => {
  it('TA issues a MacCert; the client reaches the RS; the same certificate again is refused', { timeout: 60_000 }, async () => {
    const r = await request('alice', 'alice-apk.json', 'apk');
    assert.equal(r.code, 0, r.stderr);
    const ok = await get('alice-apk.json');
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^coaps rpk [0-9a-f]{64} TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8/);
    const replay = await get('alice-apk.json');
    assert.notEqual(replay.code, 0);
    assert.match(replay.stderr, /bad_certificate/);
    console.log(`# APK replay refused: ${replay.stderr.trim()}`);
  });
  it('a forged MAC is refused (bad_certificate)', { timeout: 60_000 }, async () => {
    assert.equal((await request('alice', 'alice-apk2.json', 'apk')).code, 0);
    const c = cred('alice-apk2.json');
    const m = decodeMacCert(Buffer.from(String(c['macCert']), 'base64'));
    m.mac[0]! ^= 1;
    writeJson('forged.json', { ...c, macCert: encodeMacCert(m).toString('base64') });
    const g = await get('forged.json');
    assert.notEqual(g.code, 0);
    assert.match(g.stderr, /bad_certificate/);
    // the genuine certificate (same sequence number) still works: the failure consumed nothing
    assert.equal((await get('alice-apk2.json')).code, 0);
  });
  it('a client holding the MacCert but not the private key is refused (bad_certificate)', { timeout: 60_000 }, async () => {
    assert.equal((await request('alice', 'alice-apk3.json', 'apk')).code, 0);
    const c = cred('alice-apk3.json');
    const other = generatePrivateKey(CoseCurve.P256).export({ type: 'pkcs8', format: 'pem' }).toString();
    writeJson('stolen.json', { ...c, privateKey: other });
    const g = await get('stolen.json');
    assert.notEqual(g.code, 0);
    assert.match(g.stderr, /bad_certificate/);
  });
  it('a MacCert of an unknown TA is refused (bad_certificate)', { timeout: 60_000 }, async () => {
    const c = cred('alice-apk3.json');
    const m = decodeMacCert(Buffer.from(String(c['macCert']), 'base64'));
    writeJson('unknown-ta-apk.json', { ...c, macCert: encodeMacCert({ ...m, trustAnchorId: 'ta9' }).toString('base64') });
    const g = await get('unknown-ta-apk.json');
    assert.notEqual(g.code, 0);
    assert.match(g.stderr, /bad_certificate/);
  });
});

describe('interop: Debian coap-client-openssl with a key from our TA', { skip: LIBCOAP ? false : 'coap-client-openssl not installed' }, () => {
  it('-u NONCE -k KEY reaches our RS; the same nonce again is refused', { timeout: 60_000 }, async () => {
    assert.equal((await request('alice', 'alice-libcoap.json')).code, 0);
    const c = cred('alice-libcoap.json');
    const key = Buffer.from(String(c['key']), 'hex');
    assert.ok(!key.includes(0), 'the TA draws keys without zero bytes (keysWithoutZeroBytes)');
    // libcoap 4.3.1 reads -k as a C string: pass the raw bytes through bash's $'\xNN' quoting.
    const quoted = `$'${[...key].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('')}'`;
    const cmd = `exec ${LIBCOAP} -m get -B 5 -u '${c['identity']}' -k ${quoted} coaps://${HOST}:${dtlsPort}/whoami`;
    const first = await run('bash', ['-c', cmd], { timeout: 20_000 });
    console.log(`# libcoap first use: ${first.stdout.trim()} ${first.stderr.trim()}`);
    assert.match(first.stdout, new RegExp(`coaps psk ${String(c['identity']).replace(/\./g, '\\.')} TLS_`));
    const replay = await run('bash', ['-c', cmd], { timeout: 20_000 });
    console.log(`# libcoap replay: stdout=${JSON.stringify(replay.stdout.trim())} stderr=${JSON.stringify(replay.stderr.trim().slice(0, 300))}`);
    assert.doesNotMatch(replay.stdout, /coaps psk/);
  });
});

describe('usage errors: exit 2, one line, no key material', () => {
  const usage = async (args: string[]): Promise<string> => {
    const r = await coapsec(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    return r.stderr;
  };
  it('trust-anchor without --config, with a bad config', async () => {
    await usage(['trust-anchor']);
    const bad = writeJson('bad-ta.json', { id: 'ta1', credentials: 'ta-credentials.json', stateFile: 'x.json', resourceServers: { rs1: { key: '0x0123456789' } }, policy: {} });
    const e = await usage(['trust-anchor', '--config', bad]);
    assert.match(e, /resourceServers\.rs1\.key: must be at least 16 bytes/);
    assert.doesNotMatch(e, /0123456789/);
  });
  it('a second trust anchor on the same counter file is refused (pid lock)', async () => {
    const e = await usage(['trust-anchor', '--config', taConfig]);
    assert.match(e, /lock|in use|pid/i);
  });
  it('ta-request without --rs / --out, bad --mode, --revoke with --out', async () => {
    await usage(['ta-request', '--ta', taUri(), '--credentials', clientCreds['alice']!, '--out', 'x']);
    await usage(['ta-request', '--ta', taUri(), '--rs', 'rs1', '--credentials', clientCreds['alice']!]);
    await usage(['ta-request', '--ta', taUri(), '--rs', 'rs1', '--credentials', clientCreds['alice']!, '--out', 'x', '--mode', 'rpk']);
    await usage(['ta-request', '--ta', taUri(), '--rs', 'rs1', '--credentials', clientCreds['alice']!, '--out', 'x', '--revoke', '3']);
  });
  it('serve --trust-anchor without a key, with a short key; get with serve-only flags', async () => {
    await usage(['serve', '--trust-anchor', 'ta1']);
    assert.match(await usage(['serve', '--trust-anchor', 'ta1=0x0011']), /at least 16 bytes/);
    await usage(['get', '--trust-anchor', `ta1=0x${'00'.repeat(16)}`, 'coaps://127.0.0.1/x']);
    await usage(['get', '--ta-credential', join(dir, 'missing.json'), 'coaps://127.0.0.1/x']);
  });
});
