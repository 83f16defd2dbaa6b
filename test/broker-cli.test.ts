/** coapsec broker / publish / subscribe end to end: spawned bin/coapsec processes on loopback port 0. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { assertUsageError, coapsec, killChildren, startDaemon, watchedProcess } from './support/cli-harness.js';

const folder = mkdtempSync(join(tmpdir(), 'coapsec-broker-cli-'));
after(() => {
  killChildren();
  rmSync(folder, { recursive: true, force: true });
});

const ANNOUNCE = /coapsec broker on coap:\/\/127\.0\.0\.1:(\d+)\/ps/;

test('publish --create-topic, subscribe --json prints every publication in order, and the state survives a broker restart', async () => {
  const state = join(folder, 'state.json');
  const broker = await startDaemon(['broker', '--bind', '127.0.0.1:0', '--state', state], ANNOUNCE);
  const base = `coap://127.0.0.1:${broker.port}`;
  const created = await coapsec(['publish', `${base}/ps`, '--create-topic', 'kitchen', '--payload', 'first', '--content-format', 'text/plain']);
  assert.equal(created.code, 0, created.stderr);
  assert.equal(created.stdout, '2.01 Created\n');
  const topicData = /topic-data: (\S+)/.exec(created.stderr)![1]!;
  assert.match(topicData, new RegExp(`^${base}/ps/data/[0-9a-f]{8}$`));

  // One publisher, three subscribers and the broker, each its own process. A subscriber's first
  // line (the current publication) shows it is registered; only then is the next one published.
  const subscribers = [0, 1, 2].map(() => watchedProcess(['subscribe', topicData, '--json', '--count', '4']));
  await Promise.all(subscribers.map((s) => s.firstLine));
  for (const text of ['second', 'third', 'fourth']) {
    const r = await coapsec(['publish', topicData, '--payload', text, '--content-format', '0']);
    assert.equal(r.stdout, '2.04 Changed\n', r.stderr);
  }
  for (const sub of await Promise.all(subscribers.map((s) => s.done))) {
    assert.equal(sub.code, 0, sub.stderr);
    const lines = sub.stdout.trim().split('\n').map((l) => JSON.parse(l) as { payload: string; code: string; contentFormat: number; observe: number });
    assert.deepEqual(lines.map((l) => l.payload), ['first', 'second', 'third', 'fourth']);
    assert.ok(lines.every((l) => l.code === '2.05' && l.contentFormat === 0));
    assert.ok(lines.every((l, i) => i === 0 || l.observe > lines[i - 1]!.observe), 'Observe numbers increase');
  }

  assert.equal(await broker.stop(), 0);
  const again = await startDaemon(['broker', '--bind', '127.0.0.1:0', '--state', state], ANNOUNCE);
  assert.match(again.stderr(), /\(1 topics\)/);
  const latest = await coapsec(['get', topicData.replace(`:${broker.port}/`, `:${again.port}/`)]);
  assert.equal(latest.stdout.trim(), 'fourth', 'the latest publication was kept');
  const bad = await coapsec(['publish', topicData.replace(`:${broker.port}/`, `:${again.port}/`), '--payload', 'x', '--content-format', '60']);
  assert.equal(bad.code, 4, 'the topic-content-format was kept: 4.15');
  assert.equal(bad.stdout, '4.15 Unsupported Content-Format\n');
  assert.equal(await again.stop(), 0);
});

test('subscribe to a half-created or unknown topic: 4.04, exit 4, one clear line; usage errors exit 2', async () => {
  const broker = await startDaemon(['broker', '--bind', '127.0.0.1:0'], ANNOUNCE);
  const base = `coap://127.0.0.1:${broker.port}`;
  const r = await coapsec(['subscribe', `${base}/ps/data/none`]);
  assert.equal(r.code, 4);
  assert.match(r.stderr, /^coapsec: cannot subscribe: 4\.04 Not Found \(no such topic-data resource\)\n$/);
  assertUsageError(await coapsec(['publish', `${base}/ps/data/none`]), /--payload or --payload-file/);
  assertUsageError(await coapsec(['broker', '--max-topics', '0']), /--max-topics needs a positive whole number/);
  assertUsageError(await coapsec(['broker', '--bind', `127.0.0.1:${broker.port}`]), /EADDRINUSE/);
  assert.equal(await broker.stop(), 0);
});
