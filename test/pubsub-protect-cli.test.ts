/**
 * Protected publications end to end through separate processes: `coapsec pubsub-keys` hands out key
 * files, `coapsec broker`, one `coapsec publish --protect` and three `coapsec subscribe --protect`,
 * all reaching the broker through an in-test UDP relay that records every datagram.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { coapsec, killChildren, startDaemon, watchedProcess, type Daemon } from './support/cli-harness.js';
import { issueTopicKeys } from './support/pubsub-keys.js';
import { RecordingRelay } from './support/recording-relay.js';

const folder = mkdtempSync(join(tmpdir(), 'coapsec-pubsub-protect-'));
// The publisher's durable sequence counter lives here (children inherit the environment).
process.env['COAPSEC_STATE_DIR'] = join(folder, 'state');
const file = (name: string): string => join(folder, name);
const ANNOUNCE = /coapsec broker on coap:\/\/127\.0\.0\.1:(\d+)\/ps/;

function subscriber(keyFile: string, uri: string, count: number) {
  return watchedProcess(['subscribe', uri, '--json', '--count', String(count), '--protect', keyFile], { lineOnStderr: true });
}

async function ok(args: string[]): Promise<string> {
  const r = await coapsec(args);
  assert.equal(r.code, 0, `coapsec ${args.join(' ')}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

let broker: Daemon;
let relay: RecordingRelay;
let relayPort: number;

before(async () => {
  await issueTopicKeys(coapsec, file('kdc.json'), 'sensor', ['d1', 'd2', 'd3'], (name) => file(`${name}.json`));
  broker = await startDaemon(['broker', '--bind', '127.0.0.1:0', '--state', file('broker.json')], ANNOUNCE);
  relay = new RecordingRelay(broker.port);
  relayPort = await relay.start();
});

after(async () => {
  relay?.close();
  killChildren();
  rmSync(folder, { recursive: true, force: true });
});

test('1 publisher, 3 subscribers, 1 broker: every publication reaches every subscriber in order, verified; the broker never holds the plaintext', async () => {
  const created = await coapsec(['publish', `coap://127.0.0.1:${relayPort}/ps`, '--create-topic', 'kitchen', '--payload', 'SECRET-0', '--content-format', 'text/plain', '--protect', file('sensor.json')]);
  assert.equal(created.code, 0, created.stderr);
  const topicData = /topic-data: (\S+)/.exec(created.stderr)![1]!;

  const subscribers = ['d1', 'd2', 'd3'].map((name) => subscriber(file(`${name}.json`), topicData, 4));
  await Promise.all(subscribers.map((s) => s.firstLine));
  for (const n of [1, 2, 3]) {
    const r = await coapsec(['publish', topicData, '--payload', `SECRET-${n}`, '--content-format', '0', '--protect', file('sensor.json')]);
    assert.equal(r.stdout, '2.04 Changed\n', r.stderr);
  }
  for (const sub of await Promise.all(subscribers.map((s) => s.done))) {
    assert.equal(sub.code, 0, sub.stderr);
    assert.equal(sub.stderr, '');
    const lines = sub.stdout.trim().split('\n').map((l) => JSON.parse(l) as { payload: string; contentFormat: number; verified: { publisher: string; sequenceNumber: number } });
    assert.deepEqual(lines.map((l) => l.payload), ['SECRET-0', 'SECRET-1', 'SECRET-2', 'SECRET-3']);
    assert.deepEqual(lines.map((l) => l.verified), [0, 1, 2, 3].map((sequenceNumber) => ({ publisher: '00', sequenceNumber })));
    assert.ok(lines.every((l) => l.contentFormat === 0));
  }

  assert.equal(await broker.stop(), 0);
  const stored = readFileSync(file('broker.json'));
  const traffic = Buffer.concat(relay.datagrams);
  const gid = Buffer.from(JSON.parse(readFileSync(file('d1.json'), 'utf8')).group_key.match(/^a501040246([0-9a-f]{12})/)?.[1] ?? '', 'hex');
  assert.equal(gid.length, 6, 'the key file names its Gid');
  assert.ok(traffic.includes(gid), 'the capture holds the protected publications (so it would show a plaintext)');
  for (const n of [0, 1, 2, 3]) {
    const plaintext = Buffer.from(`SECRET-${n}`);
    for (const [where, bytes] of [['broker state', stored], ['captured traffic', traffic]] as const) {
      assert.equal(bytes.includes(plaintext), false, `${where} holds SECRET-${n}`);
      assert.equal(bytes.includes(plaintext.toString('base64')), false, `${where} holds SECRET-${n} in base64`);
      assert.equal(bytes.includes(plaintext.toString('hex')), false, `${where} holds SECRET-${n} in hex`);
    }
  }
  broker = await startDaemon(['broker', '--bind', '127.0.0.1:0', '--state', file('broker.json')], ANNOUNCE);
});

test('a publication the broker makes up, a subscriber\'s key used to publish and a departed member are refused with the reason', async () => {
  const base = `coap://127.0.0.1:${broker.port}`;
  const created = await coapsec(['publish', `${base}/ps`, '--create-topic', 'garage', '--payload', 'open', '--content-format', '0', '--protect', file('sensor.json')]);
  assert.equal(created.code, 0, created.stderr);
  const topicData = /topic-data: (\S+)/.exec(created.stderr)![1]!;

  const asSubscriber = await coapsec(['publish', topicData, '--payload', 'x', '--protect', file('d1.json')]);
  assert.equal(asSubscriber.code, 2);
  assert.match(asSubscriber.stderr, /d1 is not a publisher of "kitchen"/);

  const watcher = subscriber(file('d2.json'), topicData, 2);
  await watcher.firstLine;
  // The broker (anyone unprotected) publishes on its own: refused, and the next real one still shows.
  await ok(['publish', topicData, '--payload', 'close', '--content-format', '0']);
  await ok(['publish', topicData, '--payload', 'shut', '--content-format', '0', '--protect', file('sensor.json')]);
  const result = await watcher.done;
  assert.equal(result.code, 6, 'a refused publication makes the exit status a security failure');
  assert.deepEqual(result.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { payload: string }).payload), ['open', 'shut']);
  assert.match(result.stderr, /refused a publication \(malformed\)/);

  // d3 leaves: the group is rekeyed; its old key file cannot read what follows.
  await ok(['pubsub-keys', 'remove', file('kdc.json'), 'd3']);
  for (const name of ['sensor', 'd1']) await ok(['pubsub-keys', 'issue', file('kdc.json'), name, file(`${name}.json`)]);
  await ok(['publish', topicData, '--payload', 'after rekey', '--content-format', '0', '--protect', file('sensor.json')]);
  const departed = await coapsec(['subscribe', topicData, '--count', '1', '--duration', '2', '--protect', file('d3.json')]);
  assert.equal(departed.code, 6);
  assert.match(departed.stderr, /refused a publication \(unknown-group-key\)/);
  assert.equal(departed.stdout, '');
  const member = await coapsec(['subscribe', topicData, '--count', '1', '--protect', file('d1.json')]);
  assert.equal(member.code, 0, member.stderr);
  assert.equal(member.stdout, 'after rekey\n');
  assert.equal(await broker.stop(), 0);
});

test('pubsub-keys: clear errors for a wrong subcommand, an unknown member, an existing state file and a broken key file', async () => {
  const wrong = await coapsec(['pubsub-keys', 'frobnicate', file('kdc.json')]);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /unknown subcommand "frobnicate"/);
  const nobody = await coapsec(['pubsub-keys', 'issue', file('kdc.json'), 'nobody', file('nobody.json')]);
  assert.equal(nobody.code, 1);
  assert.equal(nobody.stderr, 'coapsec: "nobody" is not a member of "kitchen"\n');
  const noEpoch = await coapsec(['pubsub-keys', 'create', file('epoch.json'), '--topic', 'kitchen', '--epoch', '0']);
  assert.equal(noEpoch.code, 2);
  assert.match(noEpoch.stderr, /--epoch needs a positive whole number, got "0"/);
  const again = await coapsec(['pubsub-keys', 'create', file('kdc.json'), '--topic', 'kitchen']);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /exists/);
  const broken = await coapsec(['subscribe', 'coap://127.0.0.1:9/ps/data/x', '--protect', file('kdc.json')]);
  assert.equal(broken.code, 2);
  assert.match(broken.stderr, /--protect .*format must be "coapsec-pubsub-keys\/1"/);
  assert.doesNotMatch(broken.stderr + nobody.stderr + wrong.stderr, /\n\s+at /, 'no stack trace');
});
