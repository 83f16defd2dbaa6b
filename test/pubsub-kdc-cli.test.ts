/**
 * `coapsec publish --kdc URI --ace-as URI` and `coapsec subscribe --kdc URI --ace-as URI`: the
 * topic's keys from the KDC instead of a key file. The AS, the KDC and the broker run in this
 * process on real sockets; the publisher and two subscribers are CLI processes. A subscriber the
 * KDC removes is told so, and the publication after the rekey is refused by it and read by the other.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { ResponseCode } from '../src/coap/codes.js';
import { fromHex } from '../src/cose/cbor.js';
import { MemoryAsState } from '../src/ace/as-state.js';
import { bindAuthorizationServer } from '../src/ace/as-resources.js';
import { AuthorizationServer } from '../src/ace/authorization-server.js';
import { SCOPE_FORMATS } from '../src/ace/scope-format.js';
import { PubSubBroker } from '../src/broker/broker.js';
import { decodeTopicProperties, encodeTopicProperties, PUBSUB_CONTENT_FORMAT } from '../src/broker/topic-properties.js';
import { attachTopicKdc, TopicKdc } from '../src/group-manager/index.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { peerKey } from '../src/transport/transport.js';
import { ROOT, assertUsageError, coapsec, freeUdpPort, killChildren, runWalkthrough, watchedProcess } from './support/cli-harness.js';

const folder = mkdtempSync(join(tmpdir(), 'coapsec-pubsub-kdc-cli-'));
process.env['COAPSEC_STATE_DIR'] = join(folder, 'state');
const KDC_KEY = { kid: fromHex('9c'), key: fromHex('c0c1c2c3c4c5c6c7c8c9cacbcccdcecf') };
const CLIENTS = { sensor: '01', display: '02', logger: '03' } as const;
type Name = keyof typeof CLIENTS;
const secret = (name: Name): string => `${CLIENTS[name]}`.repeat(16);

let asServer: CoapServer;
let kdcServer: CoapServer;
let brokerServer: CoapServer;
let kdc: TopicKdc;
let asUri: string;
let kdcUri: string;
let topicData: string;

before(async () => {
  const contexts = (Object.keys(CLIENTS) as Name[]).map((name) => new OscoreSecurityContext({ masterSecret: fromHex(secret(name)), senderId: fromHex('aa'), recipientIds: [fromHex(CLIENTS[name])], name }, new VolatileSequence()));
  asServer = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new OscoreServerSecurity(contexts) });
  bindAuthorizationServer(
    asServer,
    new AuthorizationServer({
      issuer: 'as',
      audiences: [{ name: 'kdc', key: KDC_KEY, scopes: ['kitchen:publish', 'kitchen:read'], profile: 'coap_oscore', scopeFormat: SCOPE_FORMATS['aif-pubsub']! }],
      clients: [
        { name: 'sensor', grants: new Map([['kdc', ['kitchen:publish']]]) },
        { name: 'display', grants: new Map([['kdc', ['kitchen:read']]]) },
        { name: 'logger', grants: new Map([['kdc', ['kitchen:read']]]) },
      ],
      state: new MemoryAsState(),
    }),
  );
  asUri = `coap://${peerKey(asServer.address())}/token`;
  kdc = TopicKdc.create(['kitchen']);
  kdcServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  attachTopicKdc(kdcServer, kdc, { audiences: ['kdc'], tokenKeys: [KDC_KEY], asUri, issuer: 'as' });
  kdcUri = `coap://${peerKey(kdcServer.address())}/ace-group/kitchen`;
  brokerServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  new PubSubBroker(brokerServer);
  const admin = new CoapClient();
  const created = await admin.post(`coap://${peerKey(brokerServer.address())}/ps`, encodeTopicProperties({ topicName: 'kitchen', resourceType: 'core.ps.data', topicContentFormat: ContentFormat.TextPlain }), { contentFormat: PUBSUB_CONTENT_FORMAT });
  await admin.close();
  assert.equal(created.code, ResponseCode.Created);
  topicData = `coap://${peerKey(brokerServer.address())}${decodeTopicProperties(created.payload).topicData!}`;
  // Each client's OSCORE context with the AS (the token request's protection, RFC 9203 §3.1).
  for (const name of Object.keys(CLIENTS) as Name[]) {
    writeFileSync(join(folder, `${name}.json`), JSON.stringify({ oscore: [{ match: `${asUri.replace(/\/token$/, '')}/*`, context: { masterSecret: secret(name), senderId: CLIENTS[name], recipientId: 'aa' } }] }));
  }
});

after(async () => {
  killChildren();
  await Promise.all([asServer.close(), kdcServer.close(), brokerServer.close()]);
  rmSync(folder, { recursive: true, force: true });
});

const withKdc = (name: Name): string[] => ['--kdc', kdcUri, '--ace-as', asUri, '--credentials', join(folder, `${name}.json`), '--allow-unprotected'];

async function publish(text: string): Promise<void> {
  const r = await coapsec(['publish', topicData, '--payload', text, '--content-format', 'text/plain', ...withKdc('sensor')]);
  assert.equal(r.code, 0, r.stderr);
}

test('publish and subscribe with keys from the KDC; a removed subscriber cannot read what follows the rekey', async () => {
  await publish('one');
  const display = watchedProcess(['subscribe', topicData, '--count', '3', ...withKdc('display')]);
  await display.firstLine;
  const before = new Set(kdc.nodes('kitchen'));
  const logger = watchedProcess(['subscribe', topicData, '--count', '3', ...withKdc('logger')]);
  await logger.firstLine;
  const loggerNode = kdc.nodes('kitchen').find((n) => !before.has(n))!;
  await publish('two');
  kdc.removeNode('kitchen', loggerNode);
  await publish('three');
  const shown = await display.done;
  assert.equal(shown.code, 0, shown.stderr);
  assert.equal(shown.stdout, 'one\ntwo\nthree\n', 'the remaining subscriber read every publication, across the rekey');
  // The removed one never counts a third: it is stopped once it has refused it (or after 20 s).
  for (let waited = 0; waited < 20_000 && !/refused a publication/.test(logger.stderr()); waited += 100) await new Promise((r) => setTimeout(r, 100));
  killChildren();
  const removed = await logger.done;
  assert.equal(removed.stdout, 'one\ntwo\n');
  assert.match(removed.stderr, /no longer a member of topic group kitchen: 4\.03/);
  assert.match(removed.stderr, /refused a publication \(unknown-group-key\)/);
});

test('--kdc goes with --ace-as; a topic URI that is not /ace-group/TOPIC is a usage error', async () => {
  assertUsageError(await coapsec(['publish', topicData, '--payload', 'x', '--kdc', kdcUri]), /--ace-as/);
  assertUsageError(await coapsec(['subscribe', topicData, '--kdc', `${kdcUri}/creds`, '--ace-as', asUri]), /ace-group\/TOPIC/);
});

// The walkthrough's own files, and the clients' contexts with the AS from docs/ace.md.
const FILES = { 'kdc-as.json': 'kdc-as.json', 'kdc-config.json': 'kdc-config.json', 'kdc-walkthrough.sh': 'walkthrough.sh', 'ace-as-credentials.json': 'as-credentials.json', 'ace-alice.json': 'alice.json', 'ace-bob.json': 'bob.json' };

test('docs/pubsub.md: the KDC walkthrough is the examples/ files and runs (coapsec as, kdc, broker, publish --kdc, subscribe --kdc)', async () => {
  const doc = readFileSync(join(ROOT, 'docs', 'pubsub.md'), 'utf8');
  for (const file of ['kdc-as.json', 'kdc-config.json', 'kdc-walkthrough.sh']) {
    const text = readFileSync(join(ROOT, 'examples', file), 'utf8').trimEnd();
    assert.ok(doc.includes(`<!-- example: examples/${file} -->\n\`\`\`${file.endsWith('.sh') ? 'sh' : 'json'}\n${text}\n\`\`\``), `docs/pubsub.md shows examples/${file} verbatim`);
  }
  const work = join(folder, 'walkthrough');
  mkdirSync(work);
  const ports = { '5688': await freeUdpPort(), '5690': await freeUdpPort(), '5691': await freeUdpPort() };
  const ported = (text: string): string => Object.entries(ports).reduce((t, [from, to]) => t.replaceAll(`127.0.0.1:${from}`, `127.0.0.1:${to}`), text);
  for (const [from, to] of Object.entries(FILES)) writeFileSync(join(work, to), ported(readFileSync(join(ROOT, 'examples', from), 'utf8')));
  const result = await runWalkthrough(work, '. ./walkthrough.sh; status=$?; kill %1 %2 %3; wait; exit $status');
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /\n21\.5\n$/, "bob's subscription printed alice's publication");
  assert.match(result.stderr, /kdc: ace [0-9a-f]+ joined topic group kitchen as n1 \(publisher\), Sender ID 00/, 'kdc -v logs the joins');
  assert.match(result.stderr, /joined topic group kitchen as n2 \(subscriber\)/);
  assert.ok(existsSync(join(work, 'kdc-state.json')), 'the KDC persisted its state');
});
