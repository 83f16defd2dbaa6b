/**
 * `coapsec credentials new` end to end (serve --credentials server.json + get --credentials
 * client.json, and the libcoap twin client.conf), the pair docs/credentials.md shows, and the one
 * key rule ("0x" is hex everywhere) across flags and files.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadCredentials } from '../src/credentials/credentials-file.js';
import { loadLibcoapConf } from '../src/credentials/libcoap-conf.js';
import { parseTrustAnchorArgument } from '../src/trust-anchor/config.js';
import { KeyTextError, parseFileKeyString, parseFlagKey, parseKeyBytes } from '../src/util/key-text.js';
import { assertUsageError, coapsec, freeUdpPort, killChildren, ROOT, startDaemon } from './support/cli-harness.js';

let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'coapsec-creds-'));
});
after(() => {
  killChildren();
  rmSync(tmp, { recursive: true, force: true });
});

const SERVING = /serving on coap:\/\/127\.0\.0\.1:(\d+)/;

describe('credentials new', () => {
  test('writes client.json, server.json and client.conf (mode 0600) that work together at once', async () => {
    const dir = join(tmp, 'pair');
    const port = await freeUdpPort();
    const made = await coapsec(['credentials', 'new', '--peer', 'alice', '--out-dir', dir, '--match', `coap://127.0.0.1:${port}/*`]);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /^wrote .*client\.json, .*server\.json and .*client\.conf for peer alice/);
    for (const file of ['client.json', 'server.json', 'client.conf']) assert.equal(statSync(join(dir, file)).mode & 0o777, 0o600, file);

    const client = loadCredentials(join(dir, 'client.json'));
    const server = loadCredentials(join(dir, 'server.json'));
    const c = client.oscore[0]!.context;
    const s = server.recipients[0]!;
    assert.equal(s.name, 'alice');
    assert.deepEqual(s.context.masterSecret, c.masterSecret, 'one secret');
    assert.equal(c.masterSecret.length, 16);
    assert.deepEqual(s.context.recipientIds[0], c.senderId, "the server's recipient is the client's sender");
    assert.deepEqual(s.context.senderId, c.recipientIds[0]);
    const conf = loadLibcoapConf(join(dir, 'client.conf'));
    assert.deepEqual(conf.masterSecret, c.masterSecret, 'the libcoap twin holds the same client context');
    assert.deepEqual(conf.senderId, c.senderId);

    const serve = await startDaemon(['serve', '--bind', `127.0.0.1:${port}`, '--plugtest', '--credentials', join(dir, 'server.json')], SERVING);
    try {
      const r = await coapsec(['get', `coap://127.0.0.1:${port}/whoami`, '--credentials', join(dir, 'client.json')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'coap anonymous oscore alice', 'protected, and the server knows the client as alice');
    } finally {
      await serve.stop();
    }
  });

  test('the libcoap twin client.conf works with --oscore-conf', async () => {
    const dir = join(tmp, 'twin');
    const port = await freeUdpPort();
    assert.equal((await coapsec(['credentials', 'new', '--peer', 'bob', '--out-dir', dir, '--match', `coap://127.0.0.1:${port}/*`])).code, 0);
    const serve = await startDaemon(['serve', '--bind', `127.0.0.1:${port}`, '--plugtest', '--credentials', join(dir, 'server.json')], SERVING);
    try {
      const r = await coapsec(['get', `coap://127.0.0.1:${port}/oscore/hello/1`, '--oscore-conf', `${join(dir, 'client.conf')},${join(dir, 'client.seq')}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'Hello World!');
    } finally {
      await serve.stop();
    }
  });

  test('each run makes a fresh secret; existing files are kept unless --force', async () => {
    const dir = join(tmp, 'again');
    assert.equal((await coapsec(['credentials', 'new', '--peer', 'alice', '--out-dir', dir])).code, 0);
    const first = readFileSync(join(dir, 'client.json'), 'utf8');
    assert.match(first, /"match": "coap:\/\/127\.0\.0\.1\/\*"/, 'the default --match');
    assertUsageError(await coapsec(['credentials', 'new', '--peer', 'alice', '--out-dir', dir]), /exists already \(--force overwrites\)/);
    assert.equal(readFileSync(join(dir, 'client.json'), 'utf8'), first);
    assert.equal((await coapsec(['credentials', 'new', '--peer', 'alice', '--out-dir', dir, '--force'])).code, 0);
    const secret = (text: string): string => (JSON.parse(text) as { oscore: Array<{ context: { masterSecret: string } }> }).oscore[0]!.context.masterSecret;
    assert.notEqual(secret(readFileSync(join(dir, 'client.json'), 'utf8')), secret(first));
  });

  test('usage errors: no --peer, no or an unknown subcommand', async () => {
    assertUsageError(await coapsec(['credentials', 'new', '--out-dir', join(tmp, 'x')]), /--peer NAME/);
    assertUsageError(await coapsec(['credentials']), /subcommand/);
    assertUsageError(await coapsec(['credentials', 'old', '--peer', 'a']), /unknown credentials subcommand "old"/);
  });
});

test('docs/credentials.md: its client.json and server.json are a working pair', async () => {
  const doc = readFileSync(join(ROOT, 'docs', 'credentials.md'), 'utf8');
  const block = (name: string): string => {
    const m = new RegExp('`' + name.replace('.', '\\.') + '`:\\n\\n```json\\n([\\s\\S]*?)\\n```').exec(doc);
    assert.ok(m, `docs/credentials.md shows ${name}`);
    return m[1]!;
  };
  const dir = join(tmp, 'docs');
  mkdirSync(dir);
  const port = await freeUdpPort();
  const client = JSON.parse(block('client.json')) as { oscore: Array<{ match: string }> };
  assert.equal(client.oscore[0]!.match, 'coap://127.0.0.1/*');
  // The doc's pattern names the default port; the test's server cannot have it.
  client.oscore[0]!.match = `coap://127.0.0.1:${port}/*`;
  writeFileSync(join(dir, 'client.json'), JSON.stringify(client), { mode: 0o600 });
  writeFileSync(join(dir, 'server.json'), block('server.json'), { mode: 0o600 });
  const serve = await startDaemon(['serve', '--bind', `127.0.0.1:${port}`, '--plugtest', '--credentials', join(dir, 'server.json')], SERVING);
  try {
    const r = await coapsec(['get', `coap://127.0.0.1:${port}/whoami`, '--credentials', join(dir, 'client.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'coap anonymous oscore alice');
  } finally {
    await serve.stop();
  }
});

describe('one key rule: "0x" is hex in every flag and file', () => {
  test('the parsers', () => {
    assert.deepEqual(parseFlagKey('0x0102'), Uint8Array.of(1, 2));
    assert.deepEqual(parseFlagKey('0X0A0b'), Uint8Array.of(10, 11));
    assert.deepEqual(parseFlagKey('secret'), new Uint8Array(Buffer.from('secret')));
    assert.deepEqual(parseFileKeyString('0x0102'), Uint8Array.of(1, 2));
    assert.deepEqual(parseFileKeyString('0102'), Uint8Array.of(1, 2));
    assert.deepEqual(parseFileKeyString(''), new Uint8Array(0));
    assert.deepEqual(parseKeyBytes('0xff'), Uint8Array.of(255));
    assert.throws(() => parseKeyBytes('ff'), KeyTextError);
    assert.throws(() => parseFlagKey(''), /must not be empty/);
    // Errors name positions, never the (possibly secret) text.
    assert.throws(() => parseFlagKey('0x12secret'), (e: Error) => e instanceof KeyTextError && !e.message.includes('secret') && /position/.test(e.message));
  });

  test('--trust-anchor ID=KEY takes 0x-hex or text, as --psk does', () => {
    const hex = parseTrustAnchorArgument('ta1=0x' + '41'.repeat(16));
    const text = parseTrustAnchorArgument('ta1=' + 'A'.repeat(16));
    assert.deepEqual(hex.key, text.key);
  });

  test('credentials.json: a "0x" string is hex, the same bytes as without', () => {
    const file = (salt: string): string => {
      const path = join(tmp, `salt-${salt}.json`);
      writeFileSync(path, JSON.stringify({ oscore: [{ match: 'coap://127.0.0.1/*', context: { masterSecret: '00'.repeat(16), masterSalt: salt, senderId: '01', recipientId: '' } }] }), { mode: 0o600 });
      return path;
    };
    assert.deepEqual(loadCredentials(file('0x9e7c')).oscore[0]!.context.masterSalt, loadCredentials(file('9e7c')).oscore[0]!.context.masterSalt);
  });

  test('--psk text and --psk 0x-hex of the same bytes make the same DTLS key', async () => {
    const serve = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--psk-identity', 'alice', '--psk', 'secret'], /serving on coaps:\/\/127\.0\.0\.1:(\d+)/);
    try {
      const r = await coapsec(['get', `coaps://127.0.0.1:${serve.port}/hello`, '--psk-identity', 'alice', '--psk', '0x' + Buffer.from('secret').toString('hex')]);
      assert.equal(r.code, 0, r.stderr);
      assertUsageError(await coapsec(['get', `coaps://127.0.0.1:${serve.port}/hello`, '--psk-identity', 'alice', '--psk', '0x123']), /--psk: hex value has an odd number of digits/);
    } finally {
      await serve.stop();
    }
  });
});
