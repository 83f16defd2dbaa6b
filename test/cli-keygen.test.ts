/**
 * `coapsec keygen`: an EDHOC key pair as a private-key file (mode 0600), its CCS (RFC 9528 §3.5.2:
 * sub and a COSE_Key in cnf) and a credentials file that uses them; two identities made this way
 * and trusting each other run EDHOC. Refuses to overwrite without --force; bad flags are usage
 * errors; the key is never printed.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coseKeyFromKeyObject, CoseCurve, decodeStrict, parseCcs, toHex } from '../src/cose/index.js';
import { edhocInitiatorConfig, edhocResponderConfig, loadCredentials } from '../src/credentials/index.js';
import { EdhocInitiator, EdhocResponder } from '../src/edhoc/index.js';
import { assertUsageError, coapsec } from './support/cli-harness.js';

let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'coapsec-keygen-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const CURVES: [string[], number, string][] = [
  [['--curve', 'ed25519'], CoseCurve.Ed25519, 'ed25519'],
  [['--curve', 'X25519'], CoseCurve.X25519, 'x25519'],
  [['--curve', 'p-256'], CoseCurve.P256, 'ec'],
  [['--suite', '2'], CoseCurve.P256, 'ec'],
  [['--suite', '0', '--method', '0'], CoseCurve.Ed25519, 'ed25519'],
  [[], CoseCurve.X25519, 'x25519'],
];

describe('coapsec keygen', () => {
  for (const [flags, crv, keyType] of CURVES) {
    test(`${flags.join(' ') || '(defaults)'}: key (0600), CCS with sub and cnf COSE_Key, a credentials file that loads`, async () => {
      const dir = join(tmp, `k${flags.join('')}`);
      const r = await coapsec(['keygen', '--name', 'sensor-1', '--out-dir', dir, '--kid', '2b', ...flags]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /kid 2b/);
      assert.equal(statSync(join(dir, 'sensor-1.key')).mode & 0o777, 0o600);
      const key = createPrivateKey(readFileSync(join(dir, 'sensor-1.key')));
      assert.equal(key.asymmetricKeyType, keyType);
      const ccsBytes = new Uint8Array(readFileSync(join(dir, 'sensor-1.ccs')));
      const claims = parseCcs(ccsBytes);
      assert.equal(claims.sub, 'sensor-1');
      assert.equal(claims.coseKey.crv, crv);
      assert.equal(toHex(claims.coseKey.kid!), '2b');
      assert.equal(claims.coseKey.d, undefined, 'the CCS holds no private part');
      assert.equal(toHex(claims.coseKey.x), toHex(coseKeyFromKeyObject(key).x));
      // RFC 9528 §3.5.2 shape: {2: sub, 8: {1: COSE_Key}}.
      const map = decodeStrict(ccsBytes) as Map<number, unknown>;
      assert.deepEqual([...map.keys()], [2, 8]);
      assert.deepEqual([...(map.get(8) as Map<number, unknown>).keys()], [1]);
      const credentials = loadCredentials(join(dir, 'sensor-1.json'));
      assert.equal(toHex(credentials.edhoc!.own.cred), toHex(ccsBytes));
      const secret = readFileSync(join(dir, 'sensor-1.key'), 'utf8').split('\n')[1]!;
      assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'the key is never printed');
      assert.ok(!r.stdout.includes(toHex(coseKeyFromKeyObject(key, { includePrivate: true }).d!)));
    });
  }

  test('two identities that trust each other (by the printed peer entry) run EDHOC', async () => {
    const dir = join(tmp, 'pair');
    const client = await coapsec(['keygen', '--name', 'client', '--out-dir', dir]);
    const server = await coapsec(['keygen', '--name', 'server', '--out-dir', dir]);
    assert.deepEqual([client.code, server.code], [0, 0], client.stderr + server.stderr);
    const entry = (r: { stdout: string }) => JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { name: string; ccs: string; resources: string[] };
    for (const [self, peer] of [['client', server], ['server', client]] as const) {
      const file = join(dir, `${self}.json`);
      const json = JSON.parse(readFileSync(file, 'utf8')) as { edhoc: { peers: unknown[] } };
      json.edhoc.peers.push(entry(peer));
      writeFileSync(file, JSON.stringify(json));
    }
    const c = loadCredentials(join(dir, 'client.json')).edhoc!;
    const s = loadCredentials(join(dir, 'server.json')).edhoc!;
    const { state, message } = new EdhocInitiator(edhocInitiatorConfig(c, 'coap://127.0.0.1/x')).prepareMessage1({ connectionId: Uint8Array.of(1) });
    const { state: waitM3, message: m2 } = new EdhocResponder(edhocResponderConfig(s)).processMessage1(message).prepareMessage2({ connectionId: Uint8Array.of(2) });
    const { message: m3 } = state.processMessage2(m2).prepareMessage3();
    assert.equal(waitM3.processMessage3(m3).complete().peer.grant?.name, 'client');
  });

  test('refuses to overwrite without --force, overwrites with it (a new key)', async () => {
    const dir = join(tmp, 'again');
    assert.equal((await coapsec(['keygen', '--name', 'n', '--out-dir', dir])).code, 0);
    const before = readFileSync(join(dir, 'n.key'), 'utf8');
    assertUsageError(await coapsec(['keygen', '--name', 'n', '--out-dir', dir]), /n\.key.* exists already \(--force overwrites\)/);
    assert.equal(readFileSync(join(dir, 'n.key'), 'utf8'), before);
    assert.equal((await coapsec(['keygen', '--name', 'n', '--out-dir', dir, '--force'])).code, 0);
    assert.notEqual(readFileSync(join(dir, 'n.key'), 'utf8'), before);
    assert.equal(statSync(join(dir, 'n.key')).mode & 0o777, 0o600);
  });

  const usage: [string[], RegExp][] = [
    [['keygen'], /keygen needs --name NAME/],
    [['keygen', '--name', '../x'], /--name must be 1 to 64 letters/],
    [['keygen', '--name', 'x', '--curve', 'p-384'], /--curve must be one of ed25519, x25519, p-256, got "p-384"/],
    [['keygen', '--name', 'x', '--curve', 'x25519', '--suite', '0'], /give --curve, or --suite/],
    [['keygen', '--name', 'x', '--suite', '24'], /cipher suite 24 does not use/],
    [['keygen', '--name', 'x', '--suite', '99'], /cipher suite 99 does not use \(or it is not supported\)/],
    [['keygen', '--name', 'x', '--suite', 'two'], /--suite needs a cipher suite number/],
    [['keygen', '--name', 'x', '--method', '1'], /--method must be 0 \(signature\) or 3/],
    [['keygen', '--name', 'x', '--kid', 'xyz'], /--kid: /],
    [['keygen', '--name', 'x', '--kid', '0x0102030405060708090a'], /--kid needs 1 to 8 bytes/],
    [['keygen', '--name', 'x', 'extra'], /unexpected argument "extra"/],
  ];
  for (const [args, pattern] of usage) {
    test(`usage error: ${args.slice(1).join(' ')}`, async () => {
      assertUsageError(await coapsec(args, { cwd: tmp }), pattern);
    });
  }
});
