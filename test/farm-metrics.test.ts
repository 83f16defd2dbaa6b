/**
 * Issue 26 item 5: `coapsec serve --metrics HOST:PORT` serves Prometheus text on GET /metrics and a
 * health answer on GET /health; counters come from the server's request log, OSCORE refusals by
 * their reason (replays and Echo challenges also counted on their own).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoapClient } from '../src/client/client.js';
import { ServerMetrics } from '../src/metrics/index.js';
import type { RequestLogEntry } from '../src/server/request-log.js';
import { killChildren, startDaemon } from './support/cli-harness.js';

after(() => killChildren());

test('serve --metrics: /metrics counts the requests served, /health answers ok, anything else 404', async (t) => {
  const node = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--metrics', '127.0.0.1:0'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  t.after(() => node.stop());
  const coapPort = node.port;
  const metricsPort = (await node.waitFor(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/))[1];
  const client = new CoapClient();
  t.after(() => client.close());
  for (let i = 0; i < 3; i++) assert.equal((await client.get(`coap://127.0.0.1:${coapPort}/hello`)).status, '2.05 Content');
  assert.equal((await client.get(`coap://127.0.0.1:${coapPort}/no-such-thing`)).status, '4.04 Not Found');

  const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await metrics.text();
  assert.match(text, /^# TYPE coapsec_requests_total counter$/m);
  assert.match(text, /^coapsec_requests_total\{class="2xx",protection="none"\} 3$/m);
  assert.match(text, /^coapsec_requests_total\{class="4xx",protection="none"\} 1$/m);
  assert.match(text, /^coapsec_replay_refusals_total 0$/m);
  const health = await fetch(`http://127.0.0.1:${metricsPort}/health`);
  assert.equal(health.status, 200);
  assert.equal(await health.text(), 'ok\n');
  assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/other`)).status, 404);
  assert.equal(await node.stop(), 0, 'SIGTERM closes the metrics port too');
});

test('OSCORE refusals are counted by reason; replays and Echo challenges on their own; label values escaped', () => {
  const metrics = new ServerMetrics();
  const entry = (code: number, oscoreFailure?: string): RequestLogEntry =>
    ({ peer: '127.0.0.1:1', scheme: 'coap', identity: undefined, protection: 'oscore', request: {} as never, response: { code } as never, ...(oscoreFailure !== undefined ? { oscoreFailure } : {}) }) as RequestLogEntry;
  metrics.record(entry(0x81, 'Replay detected'));
  metrics.record(entry(0x81, 'Replay detected'));
  metrics.record(entry(0x81, 'Echo challenge after a restart (RFC 8613 Appendix B.1.2)'));
  metrics.record(entry(0x81, 'Security context not found'));
  metrics.record(entry(0x81, 'a "quoted"\nreason'));
  const text = metrics.render();
  assert.match(text, /^coapsec_oscore_failures_total\{reason="Replay detected"\} 2$/m);
  assert.match(text, /^coapsec_oscore_failures_total\{reason="Security context not found"\} 1$/m);
  assert.match(text, /^coapsec_oscore_failures_total\{reason="a \\"quoted\\"\\nreason"\} 1$/m);
  assert.match(text, /^coapsec_replay_refusals_total 2$/m);
  assert.match(text, /^coapsec_echo_challenges_total 1$/m);
  assert.match(text, /^coapsec_requests_total\{class="4xx",protection="oscore"\} 5$/m);
});
