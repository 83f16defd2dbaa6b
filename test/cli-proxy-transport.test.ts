/**
 * `coapsec proxy` listening on the stream carriers (--tcp, --ws, --tls; RFC 8323) and the client
 * commands reaching a UDP `coapsec serve` through it with `--proxy coap+ws://…`, `coap+tcp://…` and
 * `coaps+tcp://…` (issue 18 item 8), and a UDP client reaching a coap+tcp origin through it. All
 * processes are spawned CLIs on 127.0.0.1 port 0.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, assertUsageError, coapsec, killChildren, startDaemon, type Daemon } from './support/cli-harness.js';

const TLS = join(ROOT, 'test', 'fixtures', 'tls');

describe('coapsec proxy over coap+tcp, coap+ws and coaps+tcp', () => {
  let origin: Daemon;
  let tcpOrigin: Daemon;
  let proxy: Daemon;
  const ports: Record<string, number> = {};

  before(async () => {
    origin = await startDaemon(['serve', '--bind', '127.0.0.1:0'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
    tcpOrigin = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--tcp', '0'], /serving on coap\+tcp:\/\/127\.0\.0\.1:(\d+)/);
    proxy = await startDaemon(
      ['proxy', '--forward', '--bind', '127.0.0.1:0', '--tcp', '0', '--ws', '0', '--tls', '0', '--cert', join(TLS, 'server.pem'), '--key', join(TLS, 'server.key'), '--allow-destination', '127.0.0.1'],
      /proxy on coap:\/\/127\.0\.0\.1:(\d+)/,
    );
    for (const scheme of ['coap', 'coap+tcp', 'coap+ws', 'coaps+tcp']) {
      const m = await proxy.waitFor(new RegExp(`proxy on ${scheme.replace('+', '\\+')}://127\\.0\\.0\\.1:(\\d+) \\(forward\\)`));
      ports[scheme] = Number(m[1]);
    }
  });

  after(async () => {
    await proxy?.stop();
    await origin?.stop();
    await tcpOrigin?.stop();
    killChildren();
  });

  for (const scheme of ['coap+ws', 'coap+tcp', 'coaps+tcp'] as const) {
    test(`every client command through --proxy ${scheme}://`, async () => {
      const via = ['--proxy', `${scheme}://127.0.0.1:${ports[scheme]}`, ...(scheme === 'coaps+tcp' ? ['--ca', join(TLS, 'ca.pem')] : [])];
      const base = `coap://127.0.0.1:${origin.port}`;
      const get = await coapsec(['get', `${base}/hello`, ...via]);
      assert.equal(get.code, 0, get.stderr);
      assert.equal(get.stdout, 'Hello from coapsec');

      const large = await coapsec(['get', `${base}/large`, '-b', '256', ...via]);
      assert.equal(large.code, 0, large.stderr);
      assert.equal(large.stdoutBytes.length, 8192, 'the 8192 bytes of /large');

      for (const method of ['put', 'post', 'fetch'] as const) {
        const r = await coapsec([method, `${base}/echo`, '--payload', `${method} via ${scheme}`, ...via]);
        assert.equal(r.code, 0, `${method}: ${r.stderr}`);
        assert.equal(r.stdout, `${method} via ${scheme}`);
      }
      const deleted = await coapsec(['delete', `${base}/hello`, ...via]);
      assert.equal(deleted.code, 4, 'the origin answered 4.05: the request went through');
      assert.match(deleted.stderr, /4\.05 Method Not Allowed/);

      const observed = await coapsec(['observe', `${base}/time`, '--count', '2', ...via], { timeout: 15_000 });
      assert.equal(observed.code, 0, observed.stderr);
      assert.equal(observed.stdout.trim().split('\n').length, 2);
    });
  }

  test('a --tls listener with TLS-PSK: a client with the same PSK goes through it, one with another key does not', async () => {
    const pskProxy = await startDaemon(
      ['proxy', '--forward', '--bind', '127.0.0.1:0', '--tls', '0', '--psk-identity', 'gateway', '--psk', 'proxy-secret-key', '--allow-destination', '127.0.0.1'],
      /proxy on coaps\+tcp:\/\/127\.0\.0\.1:(\d+)/,
    );
    try {
      const via = ['--proxy', `coaps+tcp://127.0.0.1:${pskProxy.port}`, '--psk-identity', 'gateway'];
      const good = await coapsec(['get', `coap://127.0.0.1:${origin.port}/hello`, ...via, '--psk', 'proxy-secret-key']);
      assert.equal(good.code, 0, good.stderr);
      assert.equal(good.stdout, 'Hello from coapsec');
      const bad = await coapsec(['get', `coap://127.0.0.1:${origin.port}/hello`, ...via, '--psk', 'another-key-entirely', '--timeout', '3'], { timeout: 15_000 });
      assert.notEqual(bad.code, 0);
      assert.equal(bad.stdout, '');
    } finally {
      await pskProxy.stop();
    }
  });

  test('a UDP client reaches a coap+tcp origin through the proxy (Proxy-Scheme coap+tcp)', async () => {
    const r = await coapsec(['get', `coap+tcp://127.0.0.1:${tcpOrigin.port}/hello`, '--proxy', `coap://127.0.0.1:${ports.coap}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Hello from coapsec');
  });
});

describe('coapsec proxy: end-to-end OSCORE from a coap+ws client to a UDP origin', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-proxy-ws-'));
  const secret = '0102030405060708090a0b0c0d0e0f10';
  let origin: Daemon;
  let proxy: Daemon;
  before(async () => {
    process.env['COAPSEC_STATE_DIR'] = join(dir, 'state');
    const server = { recipients: { '01': { name: 'alice', context: { masterSecret: secret, senderId: '' } } } };
    writeFileSync(join(dir, 'server.json'), JSON.stringify(server));
    origin = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--credentials', join(dir, 'server.json')], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
    const client = { oscore: [{ match: `coap://127.0.0.1:${origin.port}/*`, context: { masterSecret: secret, senderId: '01', recipientId: '' } }] };
    writeFileSync(join(dir, 'client.json'), JSON.stringify(client));
    proxy = await startDaemon(['proxy', '--forward', '--bind', '127.0.0.1:0', '--ws', '0', '--allow-destination', '127.0.0.1'], /proxy on coap\+ws:\/\/127\.0\.0\.1:(\d+)/);
  });
  after(async () => {
    await proxy?.stop();
    await origin?.stop();
    killChildren();
    rmSync(dir, { recursive: true, force: true });
  });

  test('get --proxy coap+ws:// --credentials: the origin authenticated the client by its OSCORE context', async () => {
    const r = await coapsec(['get', `coap://127.0.0.1:${origin.port}/whoami`, '--proxy', `coap+ws://127.0.0.1:${proxy.port}`, '--credentials', join(dir, 'client.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'coap anonymous oscore alice');
  });
});

describe('coapsec proxy: stream listener usage errors', () => {
  after(killChildren);
  test('--tls without a certificate or PSK, --tcp without a port', async () => {
    assertUsageError(await coapsec(['proxy', '--forward', '--bind', '127.0.0.1:0', '--tls', '0']), /--tls needs --cert\/--key or --psk-identity\/--psk/);
    assertUsageError(await coapsec(['proxy', '--forward', '--bind', '127.0.0.1:0', '--tcp', '127.0.0.1']), /--tcp needs a port/);
  });
});
