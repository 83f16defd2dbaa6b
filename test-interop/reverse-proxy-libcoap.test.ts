/**
 * libcoap's client through `coapsec proxy --reverse` to `coapsec serve` (issue 18): Block2 and
 * Block1 at every block size arrive whole (RFC 7959), Observe notifications come through
 * (RFC 7641 §5), and the mount's /.well-known/core carries the mount prefix (RFC 6690).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { largeText } from '../src/demo/resources.js';
import { HOST, libcoapClient, startCoapsecProxy, startCoapsecServer, stopAll, which, type Daemon } from './support.js';

const BLOCK_SIZES = [16, 32, 64, 128, 256, 512, 1024];

if (which('coap-client-notls') === undefined) {
  test('libcoap is installed', () => assert.fail('coap-client-notls not found: apt-get install -y libcoap3-bin'));
} else {
  let tmp: string;
  let origin: Daemon;
  let proxy: Daemon;
  let base: string;
  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'coapsec-reverse-interop-'));
    origin = await startCoapsecServer();
    proxy = await startCoapsecProxy(['--reverse', `/dev1=coap://${HOST}:${origin.port}/`]);
    base = `coap://${HOST}:${proxy.port}/dev1`;
    // One request first: the proxy binds its upstream socket on first use, and a loaded machine
    // can take seconds over a cold start that libcoap's -B deadline would count against a test.
    await libcoapClient([`${base}/hello`], { tmpDir: tmp, waitSeconds: 15, timeout: 20_000 });
  });
  after(async () => {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  });

  describe('coap-client-notls GET /dev1/large (8192 bytes) through the reverse proxy', { concurrency: 1 }, () => {
    for (const size of BLOCK_SIZES) {
      test(`-b ${size}`, async () => {
        const r = await libcoapClient(['-b', String(size), `${base}/large`], { tmpDir: tmp, waitSeconds: 20, timeout: 30_000 });
        assert.equal(r.responseCode, '2.05', `${r.stdout.slice(-2000)}\nproxy: ${proxy.output()}`);
        assert.equal(r.body.length, 8192, `got ${r.body.length} bytes`);
        assert.equal(r.body, largeText());
      });
    }
  });

  describe('coap-client-notls POST 3000 bytes to /dev1/echo through the reverse proxy', { concurrency: 1 }, () => {
    const body = Array.from({ length: 3000 }, (_, i) => String.fromCharCode(65 + ((i * 11) % 26))).join('');
    for (const size of BLOCK_SIZES) {
      test(`-b ${size}`, async () => {
        const file = join(tmp, `post-${size}`);
        writeFileSync(file, body);
        const r = await libcoapClient(['-m', 'post', '-f', file, '-b', String(size), `${base}/echo`], { tmpDir: tmp, waitSeconds: 20, timeout: 30_000 });
        assert.equal(r.responseCode, '2.04', `${r.stdout.slice(-2000)}\nproxy: ${proxy.output()}`);
        assert.equal(r.body, body, `echoed ${r.body.length} bytes`);
      });
    }
  });

  test('coap-client-notls -s 4 /dev1/time: notifications through the reverse proxy', async () => {
    const r = await libcoapClient(['-s', '4', `${base}/time`], { tmpDir: tmp, waitSeconds: 6, timeout: 15_000 });
    const notifications = r.pdus.filter((p) => p.code === '2.05' && /Observe/.test(p.options));
    assert.ok(notifications.length >= 3, `at least 3 notifications in 4 s, got ${notifications.length}:\n${r.stdout.slice(-2000)}`);
  });

  test('coap-client-notls GET /dev1/.well-known/core: links under the mount prefix', async () => {
    const r = await libcoapClient([`${base}/.well-known/core`], { tmpDir: tmp });
    assert.equal(r.responseCode, '2.05', r.stdout);
    assert.match(r.body, /<\/dev1\/hello>/);
    assert.doesNotMatch(r.body, /<\/hello>/);
  });
}
