/**
 * Trust-anchor service logic and configuration: policy, persisted counters (never reused, also
 * across restarts; exhaustion reported; reset on a new K_RS-TA), DK credentials that the RS
 * accepts, keys without zero bytes, MacCerts, revocations; the RS's ACL file, --trust-anchor
 * arguments, and window persistence across an RS restart. Also one CoAP-over-DTLS round trip
 * through the transports with an RS built by resourceServerSetup.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { spkiOf } from '../src/dtls/connection.js';
import { CoapServer } from '../src/server/server.js';
import { addWhoamiResource } from '../src/cli/dtls-serve.js';
import { parseResourceServerAcl, parseTrustAnchorArgument, parseTrustAnchorConfig, TrustAnchorConfigError, type TrustAnchorConfig } from '../src/trust-anchor/config.js';
import { clientCredentialsOf } from '../src/trust-anchor/credential-file.js';
import { deriveKey, parseNonce } from '../src/trust-anchor/derive.js';
import { decodeMacCert, macMatches } from '../src/trust-anchor/maccert.js';
import { addRevocationResource, resourceServerSetup } from '../src/trust-anchor/resource-server-setup.js';
import { TrustAnchorVerifier } from '../src/trust-anchor/resource-server.js';
import { TrustAnchorError, TrustAnchorService } from '../src/trust-anchor/service.js';
import { CounterBlocks, StateFileCounters, keyId } from '../src/trust-anchor/counters.js';
import { generateKeyPairOn, CoseCurve } from '../src/cose/index.js';

const dir = mkdtempSync(join(tmpdir(), 'coapsec-ta-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const K = Buffer.alloc(32, 0x42);
const rsKey = generateKeyPairOn(CoseCurve.P256);
writeFileSync(join(dir, 'rs.pub.pem'), rsKey.publicKey.export({ type: 'spki', format: 'pem' }));
writeFileSync(join(dir, 'rs.key.pem'), rsKey.privateKey.export({ type: 'pkcs8', format: 'pem' }));
writeFileSync(join(dir, 'creds.json'), '{}');

let n = 0;
function config(extra: Record<string, unknown> = {}): TrustAnchorConfig {
  const file = join(dir, `ta-${++n}.json`);
  const text = JSON.stringify({
    id: 'ta1',
    credentials: 'creds.json',
    stateFile: `counters-${n}.json`,
    resourceServers: { rs1: { key: `0x${K.toString('hex')}`, publicKey: 'rs.pub.pem' }, rs2: { key: { ascii: 'sixteen byte key' } } },
    policy: { alice: ['rs1'], carol: ['*'] },
    administrators: ['admin'],
    ...extra,
  });
  writeFileSync(file, text);
  return parseTrustAnchorConfig(file);
}

describe('trust-anchor service', () => {
  it('issues DK credentials the RS derives identically, refuses clients outside the policy', async () => {
    const ta = new TrustAnchorService(config());
    const c = await ta.derivedKey('alice', 'rs1');
    assert.equal(c.sequence, 1);
    const nonce = parseNonce(c.identity)!;
    assert.deepEqual({ ta: nonce.taId, client: nonce.clientId, seq: nonce.sequence }, { ta: 'ta1', client: 'alice', seq: 1 });
    assert.equal(nonce.random!.length, 32);
    assert.ok(c.key.equals(deriveKey(K, c.identity)));
    const rs = new TrustAnchorVerifier([{ id: 'ta1', key: K }]);
    assert.ok(Buffer.from(rs.dkGrant(Buffer.from(c.identity))!.key).equals(c.key));
    await assert.rejects(ta.derivedKey('alice', 'rs2'), (e: TrustAnchorError) => e.kind === 'forbidden');
    await assert.rejects(ta.derivedKey('mallory', 'rs1'), (e: TrustAnchorError) => e.kind === 'forbidden');
    assert.equal((await ta.derivedKey('carol', 'rs2')).sequence, 1); // counters are per RS
    assert.equal((await ta.derivedKey('carol', 'rs1')).sequence, 2);
  });
  it('never reuses a sequence number, also after a restart; a block of them is durable before the first is used', async () => {
    const cfg = config({ reservationBlock: 4 });
    const a = new TrustAnchorService(cfg);
    const first = [];
    for (let i = 0; i < 3; i++) first.push((await a.derivedKey('alice', 'rs1')).sequence);
    assert.deepEqual(first, [1, 2, 3]);
    // The block [1, 4] was on disk before number 1 left, and [5, 8] was reserved ahead once half of
    // it was used; a restart skips what is unused of both.
    assert.equal(JSON.parse(readFileSync(cfg.stateFile!, 'utf8')).rs1.last, 8);
    const b = new TrustAnchorService(cfg); // a new process reading the same state file
    const second = [];
    for (let i = 0; i < 3; i++) second.push((await b.derivedKey('alice', 'rs1')).sequence);
    assert.deepEqual(second, [9, 10, 11]);
  });
  it('reports exhaustion instead of wrapping', async () => {
    const cfg = config();
    writeFileSync(cfg.stateFile!, JSON.stringify({ rs1: { last: 0xfffffffe, keyId: keyId(K) } }));
    const ta = new TrustAnchorService(cfg);
    assert.equal((await ta.derivedKey('alice', 'rs1')).sequence, 0xffffffff);
    await assert.rejects(ta.derivedKey('alice', 'rs1'), (e: TrustAnchorError) => e.kind === 'exhausted' && /exhausted/.test(e.message));
    await assert.rejects(ta.authzCertificate('alice', 'rs1', spkiOf(rsKey.publicKey)), (e: TrustAnchorError) => e.kind === 'exhausted');
    assert.equal(JSON.parse(readFileSync(cfg.stateFile!, 'utf8')).rs1.last, 0xffffffff, 'no number past 2^32 - 1 is ever reserved');
    assert.ok(ta.log.includes('exhausted rs1'));
  });
  it('a new K_RS-TA is a new association: the counter starts again', async () => {
    const counters = new CounterBlocks(new StateFileCounters(join(dir, 'rotate.json')), 16);
    assert.equal(await counters.next('rs', K), 1);
    assert.equal(await counters.next('rs', K), 2);
    assert.equal(await counters.next('rs', Buffer.alloc(32, 1)), 1);
  });
  it('keysWithoutZeroBytes redraws the random part; randomNonce false gives the bare nonce', async () => {
    let calls = 0;
    // A random source whose first draws give keys with zero bytes is retried.
    const ta = new TrustAnchorService(config(), { random: (len) => Buffer.alloc(len, ++calls) });
    for (let i = 0; i < 50; i++) assert.ok(!(await ta.derivedKey('alice', 'rs1')).key.includes(0));
    const plain = new TrustAnchorService(config({ randomNonce: false, keysWithoutZeroBytes: false }));
    assert.equal((await plain.derivedKey('alice', 'rs1')).identity, 'DK.ta1.alice.1');
    assert.throws(() => config({ randomNonce: false }), TrustAnchorConfigError);
  });
  it('issues MacCerts over the client key that verify under K_RS-TA, and hands out the RS key', async () => {
    const ta = new TrustAnchorService(config({ macLength: 16 }));
    const client = generateKeyPairOn(CoseCurve.P256);
    const c = await ta.authzCertificate('alice', 'rs1', spkiOf(client.publicKey));
    const m = decodeMacCert(c.macCert);
    assert.equal(m.macLength, 16);
    assert.ok(macMatches(K, m));
    assert.ok(m.spki.equals(spkiOf(client.publicKey)));
    assert.equal(c.serverPublicKeyPem, rsKey.publicKey.export({ type: 'spki', format: 'pem' }));
    await assert.rejects(ta.authzCertificate('alice', 'rs1', Buffer.from('not a key')), (e: TrustAnchorError) => e.kind === 'bad-request');
    await assert.rejects(ta.authzCertificate('carol', 'rs2', spkiOf(client.publicKey)), (e: TrustAnchorError) => e.kind === 'unavailable'); // rs2 has no publicKey
  });
  it('revocations: administrators only, issued numbers only; the RS applies them', async () => {
    const cfg = config();
    const ta = new TrustAnchorService(cfg);
    const c = await ta.derivedKey('alice', 'rs1');
    await assert.rejects(ta.revocation('alice', 'rs1', c.sequence), (e: TrustAnchorError) => e.kind === 'forbidden');
    // Reserved, but still held by this TA unissued: not revocable.
    await assert.rejects(ta.revocation('admin', 'rs1', c.sequence + 1), (e: TrustAnchorError) => e.kind === 'bad-request');
    // Beyond every reservation: not revocable either, also by a TA restarted on the same state.
    const restarted = new TrustAnchorService(cfg);
    await assert.rejects(restarted.revocation('admin', 'rs1', 1000), (e: TrustAnchorError) => e.kind === 'bad-request');
    assert.ok((await restarted.revocation('admin', 'rs1', c.sequence)).payload.length > 0, 'the restarted TA knows the number was issued');
    const { payload } = await ta.revocation('admin', 'rs1', c.sequence);
    const rs = new TrustAnchorVerifier([{ id: 'ta1', key: K }]);
    assert.equal(rs.handleRevocation(payload), 'revoked');
    assert.throws(() => rs.dkGrant(Buffer.from(c.identity)), /already used or revoked/);
  });
});

describe('configuration files', () => {
  it('TA config: strict fields, errors name the path, never the key', () => {
    assert.throws(() => config({ polcy: {} }), /\$\.polcy: unknown field/);
    assert.throws(() => config({ policy: { alice: ['rs9'] } }), /\$\.policy\.alice\[0\]: unknown resource server "rs9"/);
    assert.throws(() => config({ id: 'a.b' }), /\$\.id/);
    assert.throws(() => config({ resourceServers: { rs1: { key: '0x0011' } } }), (e: Error) => /at least 16 bytes/.test(e.message) && !/0011/.test(e.message));
  });
  it('RS ACL: PSK identities, raw public keys and trust anchors in one file', () => {
    const file = join(dir, 'acl.json');
    writeFileSync(
      file,
      JSON.stringify({
        psk: [{ identity: 'legacy', key: { ascii: 'legacy-secret' } }],
        rpk: { privateKey: 'rs.key.pem', trusted: ['rs.pub.pem'] },
        trustAnchors: [{ id: 'ta1', key: `0x${K.toString('hex')}`, window: 128, keyLength: 32 }],
        windowFile: 'windows.json',
      }),
    );
    const acl = parseResourceServerAcl(file);
    assert.equal(acl.psk[0]!.identity, 'legacy');
    assert.equal(acl.trustedPublicKeys.length, 1);
    assert.deepEqual({ ...acl.trustAnchors[0], key: undefined }, { id: 'ta1', key: undefined, window: 128, keyLength: 32 });
    assert.equal(acl.windowFile, join(dir, 'windows.json'));
    const setup = resourceServerSetup(undefined, acl, []);
    assert.ok(setup.verifier && setup.dtls?.authz && typeof setup.dtls.psk === 'function');
    const store = setup.dtls.psk as (id: Buffer) => unknown;
    assert.ok(Buffer.from(store(Buffer.from('legacy')) as Uint8Array).equals(Buffer.from('legacy-secret')));
    writeFileSync(file, JSON.stringify({ psk: [{ identity: 'DK.x', key: '0x00' }] }));
    assert.throws(() => parseResourceServerAcl(file), /reserved for the DerivedKey mode/);
    writeFileSync(file, JSON.stringify({ trustAnchors: [{ id: 'ta1', key: `0x${K.toString('hex')}`, window: 16 }] }));
    assert.throws(() => parseResourceServerAcl(file), /window: must be an integer in \[32, 4096\]/);
  });
  it('--trust-anchor ID=KEY[,window=N][,keylen=32]', () => {
    const e = parseTrustAnchorArgument(`ta1=0x${K.toString('hex')},window=32,keylen=32`);
    assert.deepEqual({ id: e.id, window: e.window, keyLength: e.keyLength }, { id: 'ta1', window: 32, keyLength: 32 });
    assert.throws(() => parseTrustAnchorArgument('ta1'), TrustAnchorConfigError);
    assert.throws(() => parseTrustAnchorArgument('ta1=0x00'), /at least 16 bytes/);
    assert.throws(() => parseTrustAnchorArgument(`ta1=0x${K.toString('hex')},size=3`), TrustAnchorConfigError);
  });
  it('RS windows survive a restart: a nonce used before the restart is still refused', async () => {
    const windowFile = join(dir, 'rs-win.json');
    const anchors = [{ id: 'ta1', key: K }];
    const first = resourceServerSetup(undefined, undefined, anchors, { windowFile });
    const ta = new TrustAnchorService(config());
    const c = await ta.derivedKey('alice', 'rs1');
    first.verifier!.dkGrant(Buffer.from(c.identity))!.onHandshakeSuccess!();
    const second = resourceServerSetup(undefined, undefined, anchors, { windowFile });
    assert.throws(() => second.verifier!.dkGrant(Buffer.from(c.identity)), /already used/);
  });
});

describe('through the UDP transports (CoapServer / CoapClient)', () => {
  it('DK and APK credentials from the service open coaps:// sessions; replays fail', { timeout: 30_000 }, async () => {
    const acl = { psk: [], trustedPublicKeys: [], trustAnchors: [{ id: 'ta1', key: K }], privateKey: rsKey.privateKey };
    const setup = resourceServerSetup(undefined, acl, []);
    const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, dtls: setup.dtls! });
    addWhoamiResource(server);
    addRevocationResource(server, setup.verifier!);
    const uri = `coaps://127.0.0.1:${server.address().port}/whoami`;
    const ta = new TrustAnchorService(config());
    const useOnce = async (dtls: ReturnType<typeof clientCredentialsOf>): Promise<string> => {
      const client = new CoapClient({ dtls });
      try {
        return (await client.get(uri, { timeout: 5000 })).text();
      } catch (e) {
        return `error: ${(e as Error).message}`;
      } finally {
        await client.close();
      }
    };
    try {
      const dk = await ta.derivedKey('alice', 'rs1');
      const dkCred = clientCredentialsOf({ mode: 'DerivedKey', ta: 'ta1', rs: 'rs1', sequence: dk.sequence, identity: dk.identity, key: dk.key.toString('hex') });
      assert.match(await useOnce(dkCred), /^coaps psk DK\.ta1\.alice\.1\./);
      assert.match(await useOnce(dkCred), /unknown_psk_identity/);
      const clientKey = generateKeyPairOn(CoseCurve.P256);
      const apk = await ta.authzCertificate('alice', 'rs1', spkiOf(clientKey.publicKey));
      const apkCred = clientCredentialsOf({
        mode: 'AuthorizedPublicKey',
        ta: 'ta1',
        rs: 'rs1',
        sequence: apk.sequence,
        macCert: apk.macCert.toString('base64'),
        privateKey: clientKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        serverPublicKey: apk.serverPublicKeyPem,
      });
      assert.match(await useOnce(apkCred), /^coaps rpk [0-9a-f]{64} TLS_ECDHE_ECDSA/);
      assert.match(await useOnce(apkCred), /bad_certificate/);
    } finally {
      await server.close();
    }
  });
});
