/**
 * Hop by hop and end to end together (issue 23 item 4): one publisher and two subscribers reach the
 * broker over OSCORE, a third over DTLS, each through a relay that captures its leg, while every
 * publication is also protected end to end (--protect). The broker authorizes on the OSCORE or DTLS
 * identity (--topic-acl): no hop credentials is 4.01, credentials outside the topic's ACL 4.03.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { coapsec, killChildren, startDaemon, watchedProcess, type Daemon } from './support/cli-harness.js';
import { issueTopicKeys } from './support/pubsub-keys.js';
import { RecordingRelay } from './support/recording-relay.js';

const folder = mkdtempSync(join(tmpdir(), 'coapsec-pubsub-hop-'));
process.env['COAPSEC_STATE_DIR'] = join(folder, 'state');
const file = (name: string): string => join(folder, name);

/** OSCORE clients of the broker: Sender ID and Master Secret each; "intruder" has a context but no ACL entry. */
const OSCORE_CLIENTS = { sensor: '01', d1: '02', d2: '03', intruder: '04' } as const;
const secrets = Object.fromEntries(Object.keys(OSCORE_CLIENTS).map((name) => [name, randomBytes(16).toString('hex')]));
const DTLS = ['--psk-identity', 'd3', '--psk', 'd3-shared-secret-0123'];

function writeClientCredentials(name: keyof typeof OSCORE_CLIENTS, port: number): string {
  const path = file(`${name}-oscore.json`);
  writeFileSync(path, JSON.stringify({
    stateDirectory: join(folder, `${name}-seq`),
    oscore: [{ match: `coap://127.0.0.1:${port}/*`, context: { masterSecret: secrets[name], senderId: OSCORE_CLIENTS[name], recipientId: '' } }],
  }));
  return path;
}

let broker: Daemon;
let coapPort: number;
let coapsPort: number;
let oscoreLeg: RecordingRelay;
let dtlsLeg: RecordingRelay;

before(async () => {
  await issueTopicKeys(coapsec, file('kdc.json'), 'sensor', ['d1', 'd2', 'd3'], (name) => file(`${name}-e2e.json`));
  writeFileSync(file('broker-oscore.json'), JSON.stringify({
    stateDirectory: join(folder, 'broker-seq'),
    recipients: Object.fromEntries(Object.entries(OSCORE_CLIENTS).map(([name, id]) => [id, { name, context: { masterSecret: { hex: secrets[name] }, senderId: '' } }])),
  }));
  writeFileSync(file('acl.json'), JSON.stringify({ create: ['oscore:sensor'], topics: { kitchen: { publish: ['oscore:sensor'], subscribe: ['oscore:d1', 'oscore:d2', 'dtls:psk:d3'] } } }));
  broker = await startDaemon(
    ['broker', '--bind', '127.0.0.1:0', '--dtls-bind', '127.0.0.1:0', '--credentials', file('broker-oscore.json'), ...DTLS, '--topic-acl', file('acl.json'), '--state', file('broker.json')],
    /coapsec broker on coap:\/\/127\.0\.0\.1:(\d+)\/ps/,
  );
  coapPort = broker.port;
  coapsPort = Number((await broker.waitFor(/coapsec broker on coaps:\/\/127\.0\.0\.1:(\d+)\/ps/))[1]);
  oscoreLeg = new RecordingRelay(coapPort);
  dtlsLeg = new RecordingRelay(coapsPort);
});

after(async () => {
  oscoreLeg?.close();
  dtlsLeg?.close();
  killChildren();
  rmSync(folder, { recursive: true, force: true });
});

test('1 publisher and 2 subscribers over OSCORE, 1 over DTLS, publications protected end to end: all verified in order; the legs show neither plaintext nor (OSCORE) the topic path', async () => {
  const oscorePort = await oscoreLeg.start();
  const dtlsPort = await dtlsLeg.start();
  const creds = { sensor: writeClientCredentials('sensor', oscorePort), d1: writeClientCredentials('d1', oscorePort), d2: writeClientCredentials('d2', oscorePort) };

  const created = await coapsec(['publish', `coap://127.0.0.1:${oscorePort}/ps`, '--create-topic', 'kitchen', '--payload', 'SECRET-0', '--content-format', '0', '--protect', file('sensor-e2e.json'), '--credentials', creds.sensor]);
  assert.equal(created.code, 0, created.stderr);
  const topicData = new URL(/topic-data: (\S+)/.exec(created.stderr)![1]!);
  const dataId = topicData.pathname.split('/').pop()!;

  const subscribe = (args: string[]) => watchedProcess(['subscribe', ...args, '--json', '--count', '4'], { lineOnStderr: true });
  const subscribers = [
    subscribe([topicData.href, '--protect', file('d1-e2e.json'), '--credentials', creds.d1]),
    subscribe([topicData.href, '--protect', file('d2-e2e.json'), '--credentials', creds.d2]),
    subscribe([`coaps://127.0.0.1:${dtlsPort}${topicData.pathname}`, '--protect', file('d3-e2e.json'), ...DTLS]),
  ];
  await Promise.all(subscribers.map((s) => s.firstLine));
  for (const n of [1, 2, 3]) {
    const r = await coapsec(['publish', topicData.href, '--payload', `SECRET-${n}`, '--content-format', '0', '--protect', file('sensor-e2e.json'), '--credentials', creds.sensor]);
    assert.equal(r.stdout, '2.04 Changed\n', r.stderr);
  }
  for (const sub of await Promise.all(subscribers.map((s) => s.done))) {
    assert.equal(sub.code, 0, sub.stderr);
    assert.equal(sub.stderr, '');
    const lines = sub.stdout.trim().split('\n').map((l) => JSON.parse(l) as { payload: string; verified: { publisher: string; sequenceNumber: number } });
    assert.deepEqual(lines.map((l) => l.payload), ['SECRET-0', 'SECRET-1', 'SECRET-2', 'SECRET-3']);
    assert.deepEqual(lines.map((l) => l.verified), [0, 1, 2, 3].map((sequenceNumber) => ({ publisher: '00', sequenceNumber })));
  }

  const oscoreCapture = oscoreLeg.capture();
  const dtlsCapture = dtlsLeg.capture();
  assert.ok(oscoreLeg.datagrams.length >= 12 && dtlsLeg.datagrams.length >= 8, `both legs carried the exchanges (${oscoreLeg.datagrams.length} OSCORE, ${dtlsLeg.datagrams.length} DTLS datagrams)`);
  for (const n of [0, 1, 2, 3]) {
    for (const [leg, bytes] of [['OSCORE leg', oscoreCapture], ['DTLS leg', dtlsCapture]] as const) assert.equal(bytes.includes(`SECRET-${n}`), false, `the ${leg} shows SECRET-${n}`);
  }
  for (const [what, text] of [['topic-data id', dataId], ['topic name', 'kitchen'], ['path segment "data"', 'data']] as const) {
    assert.equal(oscoreCapture.includes(text), false, `the OSCORE leg shows the ${what} "${text}" in clear`);
  }
  assert.equal(readFileSync(file('broker.json')).includes('SECRET-'), false, 'the broker stores only protected publications');

  // The control: a request without OSCORE on the same leg shows its path in clear (so the check above can fail).
  const before = oscoreLeg.datagrams.length;
  const anonymous = await coapsec(['subscribe', `coap://127.0.0.1:${oscorePort}${topicData.pathname}`, '--count', '1']);
  assert.equal(anonymous.code, 4, anonymous.stderr);
  assert.match(anonymous.stderr, /cannot subscribe: 4\.01 Unauthorized \(address:127\.0\.0\.1 may not subscribe on topic "kitchen": authenticate \(OSCORE or DTLS\) first\)/);
  assert.ok(oscoreLeg.capture(before).includes(dataId), 'an unprotected request shows the path in the capture');
});

test('hop-by-hop authorization on the authenticated identity: no hop credentials 4.01, an OSCORE client outside the topic ACL 4.03, a subscriber may not publish', async () => {
  const list = await coapsec(['get', `coap://127.0.0.1:${coapPort}/ps`]);
  assert.match(list.stdout + list.stderr, /4\.01/);
  const intruder = writeClientCredentials('intruder', coapPort);
  const d1 = writeClientCredentials('d1', coapPort);
  const topics = await coapsec(['publish', `coap://127.0.0.1:${coapPort}/ps`, '--create-topic', 'garage', '--payload', 'x', '--credentials', intruder]);
  assert.equal(topics.code, 4);
  assert.match(topics.stderr, /creating topic "garage": 4\.03 Forbidden \(oscore:intruder may not create\)/);
  const state = JSON.parse(readFileSync(file('broker.json'), 'utf8')) as { topics: Array<{ dataId: string }> };
  const path = `/ps/data/${state.topics[0]!.dataId}`;
  const sub = await coapsec(['subscribe', `coap://127.0.0.1:${coapPort}${path}`, '--count', '1', '--credentials', intruder]);
  assert.equal(sub.code, 4);
  assert.match(sub.stderr, /cannot subscribe: 4\.03 Forbidden \(oscore:intruder may not subscribe on topic "kitchen"\)/);
  const pub = await coapsec(['publish', `coap://127.0.0.1:${coapPort}${path}`, '--payload', 'forged', '--credentials', d1]);
  assert.equal(pub.stdout, '4.03 Forbidden\n');
  assert.match(pub.stderr, /oscore:d1 may not publish on topic "kitchen"/);
  const noDtls = await coapsec(['subscribe', `coaps://127.0.0.1:${coapsPort}${path}`, '--count', '1', '--psk-identity', 'd3', '--psk', 'a-wrong-secret-01234', '--timeout', '3'], { timeout: 40_000 });
  assert.notEqual(noDtls.code, 0, 'a wrong PSK gets no subscription');
  assert.equal(noDtls.stdout, '');
  assert.equal(await broker.stop(), 0);
});
