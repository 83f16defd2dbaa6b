/**
 * Proxying with Debian's libcoap (RFC 7252 §5.7): libcoap's client through our forward proxy to
 * libcoap's server and to ours, and our client through libcoap's proxy (coap-server-notls -P).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HOST, coapsec, libcoapClient, startCoapsecProxy, startCoapsecServer, startLibcoapServer, stop, stopAll, which, type Daemon } from './support.js';

const missing = ['coap-client-notls', 'coap-server-notls'].filter((name) => which(name) === undefined);

if (missing.length > 0) {
  test('libcoap is installed', () => assert.fail(`${missing.join(' and ')} not found: apt-get install -y libcoap3-bin`));
} else {
  let tmp: string;
  let proxy: Daemon;
  let ours: Daemon;
  let theirs: Daemon;
  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'coapsec-proxy-interop-'));
    proxy = await startCoapsecProxy(['--forward', '--cache-mb', '4', '--allow-destination', HOST]); // loopback origins: refused unless named (docs/security.md)
    ours = await startCoapsecServer();
    theirs = await startLibcoapServer();
  });
  after(async () => {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  });

  describe('libcoap client → coapsec proxy', () => {
    test('→ coapsec serve: GET /hello through -P', async () => {
      const r = await libcoapClient(['-P', `coap://${HOST}:${proxy.port}`, `coap://${HOST}:${ours.port}/hello`], { tmpDir: tmp });
      assert.equal(r.responseCode, '2.05', r.stdout);
      assert.equal(r.body, 'Hello from coapsec');
      assert.match(r.pdus[0]!.options, /Proxy-Uri|Proxy-Scheme/, 'libcoap addressed the proxy');
    });

    test('→ coap-server-notls: GET /time and PUT /example_data through -P', async () => {
      const time = await libcoapClient(['-P', `coap://${HOST}:${proxy.port}`, `coap://${HOST}:${theirs.port}/time`], { tmpDir: tmp });
      assert.equal(time.responseCode, '2.05', time.stdout);
      assert.match(time.body, /\d\d:\d\d:\d\d/);
      const put = await libcoapClient(['-P', `coap://${HOST}:${proxy.port}`, '-m', 'put', '-e', 'via proxy', `coap://${HOST}:${theirs.port}/example_data`], { tmpDir: tmp });
      assert.match(put.responseCode ?? '', /^2\.0[14]$/, put.stdout); // libcoap answers 2.01 when PUT creates the data
      const get = await libcoapClient(['-P', `coap://${HOST}:${proxy.port}`, `coap://${HOST}:${theirs.port}/example_data`], { tmpDir: tmp });
      assert.equal(get.body, 'via proxy', 'the PUT invalidated any cached copy (RFC 7252 §5.6)');
    });

    test('→ a silent port: 5.04 Gateway Timeout', async () => {
      const r = await libcoapClient(['-P', `coap://${HOST}:${proxy.port}`, `coap://${HOST}:9/nothing`], { tmpDir: tmp, waitSeconds: 15, timeout: 20_000 });
      assert.ok(r.responseCode === '5.04' || r.responseCode === '5.02', r.stdout);
    });
  });

  describe('coapsec client → libcoap proxy (coap-server-notls -P ",proxy.invalid")', () => {
    let libcoapProxy: Daemon;
    before(async () => {
      libcoapProxy = await startLibcoapServer(['-P', ',proxy.invalid']);
    });
    after(async () => {
      await stop(libcoapProxy.child);
    });

    test('get --proxy reaches coapsec serve through libcoap', async () => {
      const r = await coapsec(['get', `coap://${HOST}:${ours.port}/hello`, '--proxy', `coap://${HOST}:${libcoapProxy.port}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'Hello from coapsec');
    });

    test('put --proxy, then get it back from coapsec serve', async () => {
      const put = await coapsec(['put', `coap://${HOST}:${ours.port}/valve`, '--payload', '9', '--proxy', `coap://${HOST}:${libcoapProxy.port}`]);
      assert.equal(put.code, 0, put.stderr);
      const get = await coapsec(['get', `coap://${HOST}:${ours.port}/valve`]);
      assert.equal(get.stdout, '9');
    });
  });

  describe('coapsec client → coapsec proxy', () => {
    test('observe --proxy: notifications of /time through our proxy', async () => {
      const r = await coapsec(['observe', `coap://${HOST}:${ours.port}/time`, '--proxy', `coap://${HOST}:${proxy.port}`, '--count', '2'], { timeout: 10_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim().split('\n').length, 2);
    });
  });
}
