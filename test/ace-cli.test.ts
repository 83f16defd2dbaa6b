/**
 * ACE through the command line, four processes: `coapsec as`, `coapsec serve --ace`, and two
 * clients (`coapsec get|put --ace-as`), with every failure case — no token, a token for another
 * audience, an expired token, a scope too narrow, a replayed authz-info post, forged tokens (the
 * last three posted by this test process, as an attacker would, to the real AS and RS). And the
 * docs/ace.md walkthrough, run as written (its ports replaced by free ones).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { PLAIN } from '../src/client/security.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { ResponseCode } from '../src/coap/codes.js';
import { fromHex } from '../src/cose/cbor.js';
import { AceParam, decodeAceMap, encodeAceMap } from '../src/ace/ace-cbor.js';
import { AceClientSecurity } from '../src/ace/client.js';
import { sealToken } from '../src/ace/token.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { ROOT, coapsec, freeUdpPort, killChildren, runWalkthrough, startDaemon, type Daemon } from './support/cli-harness.js';

const RS_KEY = 'c0ffee00112233445566778899aabbcc';
const LIFETIME = 3;
const dir = mkdtempSync(join(tmpdir(), 'coapsec-ace-cli-'));
const env = process.env;
let as: Daemon;
let rs: Daemon;
let asUri: string;
let rsUri: string;
const clients: CoapClient[] = [];

const secrets = { alice: '0a'.repeat(16), bob: '0b'.repeat(16), carol: '0c'.repeat(16) };
const ids = { alice: 'a1', bob: 'b1', carol: 'c1' };

before(async () => {
  process.env['COAPSEC_STATE_DIR'] = join(dir, 'state');
  writeFileSync(
    join(dir, 'as.json'),
    JSON.stringify({
      issuer: 'as',
      audiences: {
        sensor: { kid: '01', key: RS_KEY, scopes: ['read', 'write'], lifetime: LIFETIME },
        other: { kid: '02', key: 'ff'.repeat(16), scopes: ['read'] },
      },
      clients: {
        alice: { grants: { sensor: ['read', 'write'], other: ['read'] } },
        bob: { grants: { sensor: ['read'] } },
        carol: { grants: { sensor: ['read'] } },
      },
    }),
  );
  const recipients = Object.fromEntries(Object.entries(ids).map(([name, id]) => [id, { name, context: { masterSecret: secrets[name as keyof typeof secrets], senderId: '' } }]));
  writeFileSync(join(dir, 'as-credentials.json'), JSON.stringify({ recipients }));
  as = await startDaemon(['as', '--config', join(dir, 'as.json'), '--credentials', join(dir, 'as-credentials.json'), '--bind', '127.0.0.1:0', '-v'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  asUri = `coap://127.0.0.1:${as.port}/token`;
  for (const name of ['alice', 'bob'] as const) {
    writeFileSync(join(dir, `${name}.json`), JSON.stringify({ oscore: [{ match: `coap://127.0.0.1:${as.port}/*`, context: { masterSecret: secrets[name], senderId: ids[name], recipientId: '' } }] }));
  }
  writeFileSync(
    join(dir, 'rs.json'),
    JSON.stringify({ audience: 'sensor', as: asUri, issuer: 'as', tokenKey: { kid: '01', key: RS_KEY }, maxTokens: 8, resources: { '/hello': { GET: 'read' }, '/valve': { GET: 'read', PUT: 'write' } } }),
  );
  rs = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--ace', join(dir, 'rs.json')], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  rsUri = `coap://127.0.0.1:${rs.port}`;
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await rs?.stop();
  await as?.stop();
  killChildren();
  process.env = env;
  rmSync(dir, { recursive: true, force: true });
});

const ace = (name: 'alice' | 'bob', ...extra: string[]): string[] => ['--ace-as', asUri, '--credentials', join(dir, `${name}.json`), ...extra];

test('no token: 4.01 with AS Request Creation Hints naming the AS, the audience and the scope', async () => {
  const r = await coapsec(['get', `${rsUri}/hello`, '--pretty']);
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stdout, new RegExp(`1: "${asUri}"`));
  assert.match(r.stdout, /5: "sensor"/);
  assert.match(r.stdout, /9: "read"/);
});

test('alice reads and writes with a token from the AS; bob reads; the AS logs each token', async () => {
  const hello = await coapsec(['get', `${rsUri}/hello`, ...ace('alice')]);
  assert.equal(hello.code, 0, hello.stderr);
  assert.equal(hello.stdout, 'Hello from coapsec');
  const put = await coapsec(['put', `${rsUri}/valve`, '--payload', '7', ...ace('alice')]);
  assert.equal(put.code, 0, put.stderr);
  const read = await coapsec(['get', `${rsUri}/valve`, ...ace('bob', '-v')]);
  assert.equal(read.code, 0, read.stderr);
  assert.equal(read.stdout, '7');
  assert.match(read.stderr, /ace: OSCORE context with sensor/);
  await as.waitFor(/issued token \d+ to bob for sensor \(scope "read"/);
});

test('scope too narrow: bob\'s PUT gets 4.05; asking the AS for "write" gets invalid_scope', async () => {
  const put = await coapsec(['put', `${rsUri}/valve`, '--payload', '3', ...ace('bob')]);
  assert.equal(put.code, 4, put.stderr);
  assert.match(put.stderr, /4\.05/);
  const ask = await coapsec(['put', `${rsUri}/valve`, '--payload', '3', ...ace('bob', '--ace-scope', 'write')]);
  assert.equal(ask.code, 6, ask.stderr);
  assert.match(ask.stderr, /invalid_scope/);
});

test('a token for another audience: the RS cannot decrypt it, 4.01, exit 6', async () => {
  const r = await coapsec(['get', `${rsUri}/hello`, ...ace('alice', '--ace-audience', 'other')]);
  assert.equal(r.code, 6, r.stderr);
  assert.match(r.stderr, /refused the access token: 4\.01/);
});

const carol = (): OscoreSecurityContext => new OscoreSecurityContext({ masterSecret: fromHex(secrets.carol), senderId: fromHex(ids.carol), recipientIds: [new Uint8Array(0)], name: 'as' }, new VolatileSequence());
let carolContext: OscoreSecurityContext;

function client(): CoapClient {
  const c = new CoapClient();
  clients.push(c);
  return c;
}

async function token(): Promise<Uint8Array> {
  carolContext ??= carol();
  const response = await client().request({ method: 'POST', uri: asUri, payload: encodeAceMap([[AceParam.audience, 'sensor']]), contentFormat: ContentFormat.AceCbor, security: new OscoreClientSecurity(carolContext) });
  assert.equal(response.code, ResponseCode.Created, response.text());
  return decodeAceMap(response.payload).get(AceParam.access_token) as Uint8Array;
}

const post = (bytes: Uint8Array, payload?: Uint8Array) =>
  client().request({
    method: 'POST',
    uri: `${rsUri}/authz-info`,
    payload: payload ?? encodeAceMap([[AceParam.access_token, bytes], [AceParam.nonce1, fromHex('1122334455667788')], [AceParam.ace_client_recipientid, fromHex('42')]]),
    contentFormat: ContentFormat.AceCbor,
    security: PLAIN,
  });

test('forged tokens: altered ciphertext and a token under another key get 4.01', async () => {
  const genuine = await token();
  assert.equal((await post(genuine)).code, ResponseCode.Created);
  const altered = Uint8Array.from(genuine);
  altered[altered.length - 2]! ^= 0x01;
  assert.equal((await post(altered)).code, ResponseCode.Unauthorized);
  const forged = sealToken({ aud: 'sensor', exp: Math.floor(Date.now() / 1000) + 600, scope: 'read write', cnf: { osc: { id: fromHex('99'), ms: fromHex('00'.repeat(16)) } } }, { kid: fromHex('01'), key: fromHex('ee'.repeat(16)) });
  assert.equal((await post(forged)).code, ResponseCode.Unauthorized);
});

test('a replayed authz-info post gets fresh nonces and leaves the client\'s context working', async () => {
  carolContext ??= carol();
  const coap = client();
  const posts: Uint8Array[] = [];
  const recording = { request: (r: Parameters<CoapClient['request']>[0]) => (r.uri.endsWith('/authz-info') && r.payload instanceof Uint8Array && posts.push(r.payload), coap.request(r)) };
  const security = new AceClientSecurity({ client: recording, asUri, asSecurity: new OscoreClientSecurity(carolContext), rsOrigin: rsUri, audience: 'sensor' });
  assert.equal((await coap.request({ method: 'GET', uri: `${rsUri}/hello`, security })).code, ResponseCode.Content);
  const one = await post(new Uint8Array(0), posts[0]);
  const two = await post(new Uint8Array(0), posts[0]);
  assert.equal(one.code, ResponseCode.Created);
  assert.notDeepEqual(decodeAceMap(one.payload).get(AceParam.nonce2), decodeAceMap(two.payload).get(AceParam.nonce2));
  const context = security.context;
  assert.equal((await coap.request({ method: 'GET', uri: `${rsUri}/hello`, security })).code, ResponseCode.Content);
  assert.equal(security.context, context);
});

test('an expired token: 4.01 at authz-info, and 4.01 unprotected on a context made from it', async () => {
  const expiring = await token();
  const coap = client();
  const security = new AceClientSecurity({ client: coap, asUri, asSecurity: new OscoreClientSecurity(carolContext), rsOrigin: rsUri, audience: 'sensor' });
  assert.equal((await coap.request({ method: 'GET', uri: `${rsUri}/hello`, security })).code, ResponseCode.Content);
  const stale = new OscoreClientSecurity(security.context!);
  await new Promise((r) => setTimeout(r, (LIFETIME + 1) * 1000));
  assert.equal((await post(expiring)).code, ResponseCode.Unauthorized);
  await assert.rejects(coap.request({ method: 'GET', uri: `${rsUri}/hello`, security: stale }), /unprotected 4\.01/);
  // The client itself notices and gets a new token.
  assert.equal((await coap.request({ method: 'GET', uri: `${rsUri}/hello`, security })).code, ResponseCode.Content);
});


test('docs/ace.md: every shell and config block is its examples/ file, and the walkthrough runs', async () => {
  const doc = readFileSync(join(ROOT, 'docs', 'ace.md'), 'utf8').split('\n');
  const shown = new Map<string, string>();
  for (let i = 0; i < doc.length; i++) {
    const marker = /^<!-- example: (examples\/[\w.-]+) -->$/.exec(doc[i]!.trim());
    if (!marker) continue;
    assert.match(doc[i + 1] ?? '', /^```(sh|json)$/, `docs/ace.md:${i + 2}: a block follows its marker`);
    const end = doc.indexOf('```', i + 2);
    shown.set(marker[1]!, doc.slice(i + 2, end).join('\n'));
  }
  const files = ['ace-as.json', 'ace-as-credentials.json', 'ace-alice.json', 'ace-bob.json', 'ace-rs.json', 'ace-walkthrough.sh'];
  for (const file of files) assert.equal(shown.get(`examples/${file}`), readFileSync(join(ROOT, 'examples', file), 'utf8').trimEnd(), `docs/ace.md shows examples/${file} verbatim`);

  const work = mkdtempSync(join(tmpdir(), 'coapsec-ace-walkthrough-'));
  try {
    const [asPort, rsPort] = [await freeUdpPort(), await freeUdpPort()];
    const ported = (text: string): string => text.replaceAll('127.0.0.1:5688', `127.0.0.1:${asPort}`).replaceAll('127.0.0.1:5683', `127.0.0.1:${rsPort}`);
    for (const file of files) writeFileSync(join(work, file.replace(/^ace-/, '')), ported(readFileSync(join(ROOT, 'examples', file), 'utf8')));
    const result = await runWalkthrough(work);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /9: "read"/);
    assert.match(result.stdout, /Hello from coapsec/);
    assert.match(result.stderr, /4\.01 Unauthorized[\s\S]*4\.05 Method Not Allowed/);
    assert.match(result.stdout, /7$/, 'bob reads the level alice set');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});


test('usage errors: as without --config or --credentials, a bad --ace file, ACE flags without --ace-as', async () => {
  const { assertUsageError } = await import('./support/cli-harness.js');
  assertUsageError(await coapsec(['as', '--credentials', join(dir, 'as-credentials.json')]), /--config/);
  assertUsageError(await coapsec(['as', '--config', join(dir, 'as.json')]), /--credentials/);
  writeFileSync(join(dir, 'bad-rs.json'), JSON.stringify({ audience: 'sensor', tokenKey: { kid: '01', key: '00' }, resources: {} }));
  assertUsageError(await coapsec(['serve', '--bind', '127.0.0.1:0', '--ace', join(dir, 'bad-rs.json')]), /"tokenKey"\.key must be 16 bytes/);
  assertUsageError(await coapsec(['serve', '--bind', '127.0.0.1:0', '--ace', join(dir, 'missing.json')]), /cannot read/);
  assertUsageError(await coapsec(['get', 'coap://127.0.0.1:9/x', '--ace-scope', 'read']), /--ace-as/);
});
