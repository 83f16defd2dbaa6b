/**
 * KUDOS from the command line, with real processes: `coapsec serve` with a credentials file whose
 * recipient has "kudos", `coapsec rekey URI` (the forward flow by hand, -v showing the transitions
 * and never a key), requests before and after, a server-started update (its policy's
 * maxMessages), a refusal for a context without "kudos", and --kudos-ead: KUDOS offered in
 * EDHOC's EAD (§4.8) by get and serve, then `coapsec rekey` on an EDHOC-derived context.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { assertUsageError, coapsec, killChildren, startDaemon } from './support/cli-harness.js';

const root = mkdtempSync(join(tmpdir(), 'coapsec-kudos-cli-'));
process.env['COAPSEC_STATE_DIR'] = join(root, 'common-state');
const SECRET = '0102030405060708090a0b0c0d0e0f10';

after(() => {
  killChildren();
  rmSync(root, { recursive: true, force: true });
});

export function writeKudosCredentials(directory: string, port: number, serverKudos: Record<string, number> = {}): { client: string; server: string } {
  const server = join(directory, 'server.json');
  const client = join(directory, 'client.json');
  writeFileSync(server, JSON.stringify({ stateDirectory: 'server-state', recipients: { '01': { name: 'client', context: { masterSecret: SECRET, senderId: '02', kudos: serverKudos } } } }));
  writeFileSync(client, JSON.stringify({ stateDirectory: 'client-state', oscore: [{ match: `coap://127.0.0.1:${port}/*`, context: { masterSecret: SECRET, senderId: '01', recipientId: '02', kudos: {} } }] }));
  return { client, server };
}

const directory = (name: string): string => mkdtempSync(join(root, `${name}-`));

test('coapsec rekey updates the context with a coapsec serve; requests work before and after; -v shows transitions, never keys', async () => {
  const dir = directory('rekey');
  // The port is known only once the server runs; the client file is rewritten with it.
  const first = writeKudosCredentials(dir, 0);
  const serve = await startDaemon(['serve', '--credentials', first.server, '--bind', '127.0.0.1:0', '-v'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  try {
    const { client } = writeKudosCredentials(dir, serve.port);
    const base = `coap://127.0.0.1:${serve.port}`;
    const before = await coapsec(['get', `${base}/hello`, '--credentials', client]);
    assert.equal(before.code, 0, before.stderr);
    const rekey = await coapsec(['rekey', `${base}/`, '--credentials', client, '-v']);
    assert.equal(rekey.code, 0, rekey.stderr);
    assert.match(rekey.stdout, /^key updated with coap:\/\/127\.0\.0\.1:\d+\/: Sender ID 01, Recipient ID 02 \(unchanged: KUDOS keeps the IDs\), context [0-9a-f]{12}\n$/);
    assert.match(rekey.stderr, /IDLE -> BUSY/);
    assert.match(rekey.stderr, /update completed \(FS mode, observations ended\)/);
    await serve.waitFor(/kudos client: IDLE -> BUSY[\s\S]*kudos client: BUSY -> PENDING/);
    const afterUpdate = await coapsec(['get', `${base}/hello`, '--credentials', client]);
    assert.equal(afterUpdate.code, 0, afterUpdate.stderr);
    await serve.waitFor(/kudos client: PENDING -> IDLE/);
    // Never a key on any output: the master secret and the KUDOS record's secrets.
    const record = JSON.parse(readFileSync(join(dir, 'client-state', 'kudos', readdirSync(join(dir, 'client-state', 'kudos'))[0]!), 'utf8')) as { record: { current: { masterSecret: string } } };
    for (const text of [rekey.stdout, rekey.stderr, serve.stderr(), afterUpdate.stderr]) {
      assert.ok(!text.includes(SECRET) && !text.includes(record.record.current.masterSecret), 'no key in the output');
    }
    assert.notEqual(record.record.current.masterSecret, SECRET);
  } finally {
    await serve.stop();
  }
});

test('a server whose policy says maxMessages starts KUDOS in a response (the reverse flow); the client follows', async () => {
  const dir = directory('policy');
  const first = writeKudosCredentials(dir, 0, { maxMessages: 2 });
  const serve = await startDaemon(['serve', '--credentials', first.server, '--bind', '127.0.0.1:0', '-v'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  try {
    const { client } = writeKudosCredentials(dir, serve.port);
    const base = `coap://127.0.0.1:${serve.port}`;
    for (let i = 0; i < 4; i++) {
      const r = await coapsec(['get', `${base}/hello`, '--credentials', client]);
      assert.equal(r.code, 0, r.stderr);
    }
    await serve.waitFor(/kudos client: update completed/);
  } finally {
    await serve.stop();
  }
});

test('coapsec rekey refuses a context without "kudos", and needs --credentials', async () => {
  const dir = directory('nokudos');
  const file = join(dir, 'client.json');
  writeFileSync(file, JSON.stringify({ oscore: [{ match: 'coap://127.0.0.1:9/*', context: { masterSecret: SECRET, senderId: '01', recipientId: '02' } }] }));
  assertUsageError(await coapsec(['rekey', 'coap://127.0.0.1:9/', '--credentials', file]), /has no "kudos" entry/);
  assertUsageError(await coapsec(['rekey', 'coap://127.0.0.1:9/']), /needs --credentials/);
  assertUsageError(await coapsec(['rekey', 'coap://127.0.0.2:9/', '--credentials', file]), /no OSCORE context/);
});

/** keygen'd EDHOC identities trusting each other with every resource (as test/cli-edhoc.test.ts makes them). */
async function edhocIdentities(directory: string): Promise<{ server: string; client: string }> {
  const make = async (name: string, kid: string, peer: string): Promise<string> => {
    const r = await coapsec(['keygen', '--name', name, '--out-dir', directory, '--kid', kid, '--suite', '2']);
    assert.equal(r.code, 0, r.stderr);
    const file = join(directory, `${name}.json`);
    const json = JSON.parse(readFileSync(file, 'utf8')) as { edhoc: { peers: unknown[] } };
    json.edhoc.peers = [{ name: peer, ccs: `${peer}.ccs`, resources: ['/*'] }];
    writeFileSync(file, JSON.stringify(json));
    return file;
  };
  return { server: await make('gateway', '01', 'alice'), client: await make('alice', '02', 'gateway') };
}

test('--kudos-ead: get offers KUDOS in EDHOC and both sides log the answer; coapsec rekey then updates an EDHOC-derived context, confirmed on the server', async () => {
  const dir = directory('edhoc');
  const files = await edhocIdentities(dir);
  const serve = await startDaemon(['serve', '--credentials', files.server, '--bind', '127.0.0.1:0', '--kudos-ead', '-v'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  try {
    const base = `coap://127.0.0.1:${serve.port}`;
    const get = await coapsec(['get', `${base}/whoami`, '--credentials', files.client, '--kudos-ead', '-v']);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout.trim(), 'coap anonymous edhoc alice');
    assert.match(get.stderr, /^KUDOS support of coap:\/\/127\.0\.0\.1:\d+ \(EDHOC EAD, §4\.8\): FULL$/m, 'the server answered ASK in message_2');
    await serve.waitFor(/EDHOC with alice: .*; KUDOS support of the peer: FULL/);
    const rekey = await coapsec(['rekey', `${base}/`, '--credentials', files.client, '-v']);
    assert.equal(rekey.code, 0, rekey.stderr);
    assert.match(rekey.stdout, /^key updated with coap:\/\/127\.0\.0\.1:\d+\/ \(EDHOC context\): Sender ID [0-9a-f]+, Recipient ID [0-9a-f]+ \(unchanged: KUDOS keeps the IDs\), context [0-9a-f]{12}\n$/);
    assert.match(rekey.stderr, /IDLE -> BUSY[\s\S]*update completed \(FS mode, observations ended\)/);
    await serve.waitFor(/kudos edhoc alice: IDLE -> BUSY[\s\S]*kudos edhoc alice: BUSY -> PENDING[\s\S]*kudos edhoc alice: PENDING -> IDLE/);
    // The records of EDHOC-derived contexts live as long as the contexts: the server's two (the get's
    // and the rekey's EDHOC) stay, the rekey process deleted its own when it ended.
    const records = readdirSync(join(root, 'common-state', 'kudos-edhoc'));
    assert.equal(records.length, 2, records.join(', '));
    const secret = (JSON.parse(readFileSync(join(root, 'common-state', 'kudos-edhoc', records[0]!), 'utf8')) as { record: { current: { masterSecret: string } } }).record.current.masterSecret;
    assert.ok(![rekey.stdout, rekey.stderr, serve.stderr()].some((text) => text.includes(secret)), 'no key in the output');
    // Without --kudos-ead the same client offers nothing, and the server runs no KUDOS for it.
    const plain = await coapsec(['get', `${base}/whoami`, '--credentials', files.client, '-v']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.doesNotMatch(plain.stderr, /KUDOS support/);
  } finally {
    await serve.stop();
  }
});

test('--kudos-ead needs an "edhoc" section: serve and get refuse it otherwise', async () => {
  const dir = directory('kudos-ead-usage');
  const { server } = writeKudosCredentials(dir, 9);
  assertUsageError(await coapsec(['serve', '--credentials', server, '--bind', '127.0.0.1:0', '--kudos-ead']), /--kudos-ead goes with --credentials whose file has an "edhoc" section/);
  assertUsageError(await coapsec(['get', 'coap://127.0.0.1:9/x', '--kudos-ead']), /--kudos-ead goes with --credentials/);
});
