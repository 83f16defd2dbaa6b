/**
 * Interoperability with Debian's libcoap 4.3.1 (libcoap3-bin) over RFC 8323: coap+tcp:// and
 * coaps+tcp:// (TLS with the certificates in test/fixtures/tls), in both directions, on loopback:
 * GET, PUT, Observe and block-wise. libcoap 4.3.1 is built without WebSockets (its -h lists no
 * coap+ws), so coap+ws is covered by test/stream-loopback.test.ts between our own client and server.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { CoapServer } from '../src/server/server.js';
import { HOST, ROOT, coapsec, freePort, parsePdus, run, startCoapsecServer, stop, which } from './support.js';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'tls');
const CA = join(FIXTURES, 'ca.pem');
const CERT = join(FIXTURES, 'server.pem');
const KEY = join(FIXTURES, 'server.key');
const BIG = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(140); // 5040 bytes

const tools = ['coap-client-notls', 'coap-server-notls', 'coap-client-openssl', 'coap-server-openssl'];
const missing = tools.filter((name) => which(name) === undefined);

if (missing.length > 0) {
  // Not a skip: CI installs libcoap, so its absence is a broken setup that must show.
  test('libcoap is installed', () => assert.fail(`${missing.join(', ')} not found on PATH: install Debian's libcoap3-bin`));
} else {
  defineTests();
}

/** Our server with the resources the libcoap client exercises. */
async function ourServer(scheme: 'coap+tcp' | 'coaps+tcp', maxMessageSize?: number) {
  let stored = 'initial';
  let counter = 0;
  const server = await CoapServer.listen({
    scheme,
    host: HOST,
    port: 0,
    ...(scheme === 'coaps+tcp' ? { tls: { cert: readFileSync(CERT), key: readFileSync(KEY) } } : {}),
    ...(maxMessageSize !== undefined ? { stream: { settings: { maxMessageSize } } } : {}),
  });
  server.resource('hello', { GET: () => ({ code: ResponseCode.Content, payload: 'world' }) });
  server.resource('store', {
    GET: () => ({ code: ResponseCode.Content, payload: stored }),
    PUT: (request) => {
      stored = Buffer.from(request.payload).toString();
      return { code: ResponseCode.Changed };
    },
  });
  server.resource('big', { GET: () => ({ code: ResponseCode.Content, payload: BIG }) });
  server.resource('counter', { GET: () => ({ code: ResponseCode.Content, payload: String(counter) }) }, { observable: true });
  const ticker = setInterval(() => {
    counter++;
    server.changed('counter');
  }, 200);
  return {
    server,
    base: `${scheme}://${HOST}:${server.address().port}`,
    close: async () => {
      clearInterval(ticker);
      await server.close();
    },
  };
}

/** libcoap's client: -v 6 logs every PDU on stdout; -B bounds how long it waits. */
async function libcoapClient(variant: 'notls' | 'openssl', args: readonly string[], waitSeconds = 3) {
  const tls = variant === 'openssl' ? ['-C', CA] : [];
  const result = await run(`coap-client-${variant}`, ['-v', '6', '-B', String(waitSeconds), ...tls, ...args], { timeout: (waitSeconds + 5) * 1000 });
  // The PDU log quotes printable payloads ('world').
  const pdus = parsePdus(result.stdout).map((p) => ({ ...p, payload: p.payload?.replace(/^'([\s\S]*)'$/, '$1') }));
  return { ...result, pdus, responses: pdus.filter((p) => /^[2-5]\.\d\d$/.test(p.code)) };
}

const children = new Set<ChildProcess>();

/** libcoap's example server on a free port (UDP and TCP there, DTLS and TLS one above); resolves once `port` accepts TCP. */
async function libcoapServer(variant: 'notls' | 'openssl'): Promise<{ tcpPort: number; tlsPort: number; child: ChildProcess }> {
  const port = await freePort();
  const tls = variant === 'openssl' ? ['-c', CERT, '-j', KEY] : [];
  const child = spawn(`coap-server-${variant}`, ['-A', HOST, '-p', String(port), ...tls], { stdio: 'ignore' });
  children.add(child);
  const wanted = variant === 'openssl' ? port + 1 : port;
  for (let attempt = 0; attempt < 50; attempt++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: HOST, port: wanted }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return { tcpPort: port, tlsPort: port + 1, child };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop(child);
  throw new Error(`coap-server-${variant} did not listen on ${wanted}`);
}

function defineTests(): void {
  after(async () => {
    await Promise.all([...children].map(stop));
  });

  describe('coapsec serve --tcp/--tls, and the CLI client', () => {
    test('libcoap clients reach `coapsec serve` over coap+tcp and coaps+tcp; `coapsec get` over coap+tcp and coap+ws', async () => {
      const daemon = await startCoapsecServer(['--tcp', '0', '--ws', '0', '--tls', '0', '--cert', CERT, '--key', KEY, '--dtls-bind', `${HOST}:0`]);
      try {
        const tcp = await daemon.waitForOutput(/coap\+tcp:\/\/\S+/);
        const tls = await daemon.waitForOutput(/coaps\+tcp:\/\/\S+/);
        const ws = await daemon.waitForOutput(/coap\+ws:\/\/\S+/);
        const plain = await libcoapClient('notls', [`${tcp}/hello`]);
        assert.equal(plain.responses.at(-1)?.code, '2.05', plain.stdout);
        const secure = await libcoapClient('openssl', [`${tls}/hello`]);
        assert.equal(secure.responses.at(-1)?.code, '2.05', secure.stdout);
        const large = await coapsec(['get', '-b', '64', `${ws}/large`]);
        assert.equal(large.code, 0, large.stderr);
        assert.equal(large.stdout.length, 8192);
        const viaTls = await coapsec(['get', `${tls}/hello`, '--ca', CA]);
        assert.equal(viaTls.code, 0, viaTls.stderr);
        const untrusted = await coapsec(['get', `${tls}/hello`]);
        assert.notEqual(untrusted.code, 0, 'without --ca the server certificate is not trusted');
        assert.match(untrusted.stderr, /certificate/);
      } finally {
        await stop(daemon.child);
      }
    });
  });

  for (const [scheme, variant] of [['coap+tcp', 'notls'], ['coaps+tcp', 'openssl']] as const) {
    describe(`libcoap client → our server over ${scheme}`, () => {
      test('GET, PUT then GET', async () => {
        const s = await ourServer(scheme);
        try {
          const get = await libcoapClient(variant, [`${s.base}/hello`]);
          assert.equal(get.responses.at(-1)?.code, '2.05', get.stdout);
          assert.equal(get.responses.at(-1)?.payload, 'world');
          const put = await libcoapClient(variant, ['-m', 'put', '-e', 'from libcoap', `${s.base}/store`]);
          assert.equal(put.responses.at(-1)?.code, '2.04', put.stdout);
          const after = await libcoapClient(variant, [`${s.base}/store`]);
          assert.equal(after.responses.at(-1)?.payload, 'from libcoap');
        } finally {
          await s.close();
        }
      });

      test('block-wise: Block2 GET of 5040 bytes in 64-byte blocks, Block1 PUT of 3000 bytes', async () => {
        // A Max-Message-Size of 1152 (the base value) makes libcoap split the 3000-byte PUT; with
        // more room it sends the body whole, as RFC 8323 allows.
        const s = await ourServer(scheme, 1152);
        try {
          const get = await libcoapClient(variant, ['-b', '64', `${s.base}/big`]);
          const blocks = get.responses.filter((r) => r.code === '2.05');
          assert.ok(blocks.length >= 5040 / 64, `expected ≥ 79 Block2 responses, saw ${blocks.length}`);
          assert.ok(blocks.map((b) => b.payload).join('') === BIG, 'the blocks reassemble to the body');
          const payload = 'q'.repeat(3000);
          const put = await libcoapClient(variant, ['-m', 'put', '-b', '256', '-e', payload, `${s.base}/store`]);
          assert.equal(put.responses.at(-1)?.code, '2.04', put.stdout.slice(-2000));
          // libcoap 4.3.1 logs only the first and the last exchange at -v 6: the 2.04 answers block 11
          // of 256 bytes, so the body went as blocks 0..11 (RFC 7959 §2.3).
          assert.match(put.stdout, /c:PUT .*Block1:0\/M\/256/);
          assert.match(put.stdout, /c:2\.04 .*Block1:11\/_\/256/);
          const back = await libcoapClient(variant, [`${s.base}/store`]);
          assert.ok(back.responses.filter((r) => r.code === '2.05').map((r) => r.payload).join('') === payload, 'the stored body is the PUT body');
        } finally {
          await s.close();
        }
      });

      test('Observe: notifications arrive over the connection (no CON/NON, RFC 8323 §7.2)', async () => {
        const s = await ourServer(scheme);
        try {
          const observe = await libcoapClient(variant, ['-s', '2', `${s.base}/counter`], 3);
          const notifications = observe.responses.filter((r) => r.code === '2.05');
          assert.ok(notifications.length >= 4, `expected ≥ 4 notifications in 2 s, saw ${notifications.length}:\n${observe.stdout.slice(-1500)}`);
          const values = notifications.map((n) => Number(n.payload));
          assert.deepEqual(values, [...values].sort((a, b) => a - b), 'in order');
        } finally {
          await s.close();
        }
      });
    });

    describe(`our client → libcoap server over ${scheme}`, () => {
      test('GET, block-wise GET and PUT, Observe, Ping', async () => {
        const libcoap = await libcoapServer(variant);
        const base = `${scheme}://${HOST}:${scheme === 'coaps+tcp' ? libcoap.tlsPort : libcoap.tcpPort}`;
        const client = new CoapClient({ tls: { ca: readFileSync(CA) } });
        try {
          const whole = await client.get(`${base}/example_data`);
          assert.equal(whole.status, '2.05 Content');
          assert.equal(whole.payload.length, 1500, 'libcoap serves 1500 bytes initially');
          if (scheme === 'coaps+tcp') assert.equal(whole.context.security?.identity, 'CN=localhost');
          const small = await client.get(`${base}/example_data`, { blockSize: 64 });
          assert.deepEqual(small.payload, whole.payload);
          const put = await client.put(`${base}/example_data`, 'z'.repeat(3000), { blockSize: 256 });
          assert.equal(put.status, '2.04 Changed');
          assert.equal((await client.get(`${base}/example_data`)).text(), 'z'.repeat(3000));
          const observation = await client.observe(`${base}/time`);
          const times: string[] = [];
          for (let i = 0; i < 3; i++) times.push((await observation.next()).value!.text());
          assert.equal(new Set(times).size, 3, `three distinct times: ${times.join(', ')}`);
          await observation.cancel();
          const rtt = await client.ping(base);
          assert.ok(rtt >= 0 && rtt < 5000);
        } finally {
          await client.close();
          await stop(libcoap.child);
        }
      });
    });
  }
}
