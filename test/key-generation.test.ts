import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPublicKey, diffieHellman, sign, verify } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { CoseCurve, generateKeyPairOn, generatePrivateKey, rawKeyParts } from '../src/cose/index.js';

const CURVES = [
  ['Ed25519', CoseCurve.Ed25519, 'ed25519'],
  ['Ed448', CoseCurve.Ed448, 'ed448'],
  ['X25519', CoseCurve.X25519, 'x25519'],
  ['X448', CoseCurve.X448, 'x448'],
  ['P-256', CoseCurve.P256, 'ec'],
  ['P-384', CoseCurve.P384, 'ec'],
  ['P-521', CoseCurve.P521, 'ec'],
] as const;

describe('generatePrivateKey', () => {
  for (const [name, crv, type] of CURVES) {
    it(`${name}: a fresh key of that curve each time, usable for its operation`, () => {
      const a = generateKeyPairOn(crv);
      const b = generatePrivateKey(crv);
      assert.equal(a.privateKey.asymmetricKeyType, type);
      assert.equal(rawKeyParts(a.privateKey).crv, crv);
      assert.ok(createPublicKey(a.privateKey).equals(a.publicKey));
      assert.notDeepEqual(rawKeyParts(a.privateKey).d, rawKeyParts(b).d);
      if (type === 'x25519' || type === 'x448' || (type === 'ec' && crv !== CoseCurve.P521)) {
        const shared = diffieHellman({ privateKey: a.privateKey, publicKey: createPublicKey(b) });
        assert.deepEqual(shared, diffieHellman({ privateKey: b, publicKey: a.publicKey }));
      } else {
        const data = Buffer.from('coapsec');
        const signature = sign(null, data, a.privateKey);
        assert.ok(verify(null, data, a.publicKey, signature));
      }
    });
  }

  it('EC2 scalars are always the full coordinate length, so a short scalar never changes the key', () => {
    for (let i = 0; i < 300; i++) {
      const { d } = rawKeyParts(generatePrivateKey(CoseCurve.P256));
      assert.equal(d?.length, 32);
    }
  });

  // Node 20's generateKeyPairSync deadlocked this project's tests: exporting such a key holds the
  // key's mutex while allocating, and a GC there runs the key-generation job's destructor, which
  // takes the same mutex. Many exports under a tiny young generation make that GC near certain
  // (the same loop over generateKeyPairSync hangs within a few thousand keys), so a child that
  // finishes shows our keys have no such job.
  it('keys can be exported under constant GC pressure without hanging the process', () => {
    const keyModule = new URL('../src/cose/index.js', import.meta.url).href;
    const script = `
      const { generatePrivateKey, CoseCurve } = await import(${JSON.stringify(keyModule)});
      let junk = [];
      for (const crv of [CoseCurve.Ed25519, CoseCurve.X25519, CoseCurve.P256]) {
        for (let i = 0; i < 2500; i++) {
          const key = generatePrivateKey(crv);
          key.export({ format: 'jwk' });
          key.export({ format: 'der', type: 'pkcs8' });
          junk.push(new Array(64).fill(i));
          if (junk.length > 500) junk = [];
        }
      }
      process.stdout.write('exported 7500 keys');`;
    const child = spawnSync(process.execPath, ['--max-semi-space-size=1', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('.', import.meta.url)),
      encoding: 'utf8',
      timeout: 30_000,
      killSignal: 'SIGKILL',
    });
    assert.equal(child.signal, null, `the key-export child was killed (${String(child.signal)}) after 30 s: a hang`);
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, 'exported 7500 keys');
  });
});
