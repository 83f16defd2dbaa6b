/**
 * What a forward proxy may reach (issue 17 item 1): CoAP→HTTP off unless asked for and then only to
 * named destinations; loopback, private, link-local (cloud metadata), multicast and other special
 * addresses refused unless allowed, judged on the resolved address; refused with 5.05 (RFC 7252 §5.7.2).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { PLAIN, securedSender } from '../src/client/security.js';
import { addDemoResources } from '../src/demo/resources.js';
import { DestinationPolicy } from '../src/proxy/destination-policy.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { coapToHttp, startHttpCrossProxy } from '../src/proxy/http-cross-proxy.js';
import { CoapClient } from '../src/client/client.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';

describe('DestinationPolicy', () => {
  const open = new DestinationPolicy();

  test('special addresses are refused for CoAP by default; public ones are not', () => {
    for (const address of ['127.0.0.1', '127.8.9.10', '10.1.2.3', '172.16.0.1', '172.31.255.254', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.1.187', '255.255.255.255',
      '::', '::1', 'fe80::1', 'fd00:ec2::254', 'fc00::5', 'ff02::fd', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:169.254.169.254', '64:ff9b::a00:1']) {
      assert.equal(open.permits('coap', address, address), false, address);
    }
    for (const address of ['8.8.8.8', '93.184.216.34', '172.32.0.1', '2001:db8::1', '2606:4700::1111', '::ffff:8.8.8.8']) {
      assert.equal(open.permits('coap', address, address), true, address);
    }
  });

  test('the resolved address decides, not the name (a name can point anywhere)', () => {
    assert.equal(open.permits('coap', 'metadata.google.internal', '169.254.169.254'), false);
    assert.equal(open.permits('coap', '127.0.0.1.nip.io', '127.0.0.1'), false);
    assert.equal(open.permits('coap', 'coap.example', '93.184.216.34'), true);
  });

  test('allow entries: CIDR networks, addresses and host names (a named host is trusted whatever it resolves to)', () => {
    const policy = new DestinationPolicy({ allow: ['10.0.0.0/8', '::1', 'Sensor.LAN.', '[fd00::]/8'] });
    assert.equal(policy.permits('coap', '10.9.9.9', '10.9.9.9'), true);
    assert.equal(policy.permits('coap', 'x', '::1'), true);
    assert.equal(policy.permits('coap', 'sensor.lan', '192.168.7.7'), true);
    assert.equal(policy.permits('coap', 'fd12::1', 'fd12::1'), true);
    assert.equal(policy.permits('coap', '192.168.7.7', '192.168.7.7'), false, 'the same address by another name is not allowed');
    assert.equal(policy.permits('coap', '127.0.0.1', '127.0.0.1'), false);
    assert.equal(policy.permits('coap', 'x', '::ffff:10.0.0.1'), true, 'an IPv4-mapped address is the IPv4 address');
  });

  test('HTTP destinations: only the allowed ones, public or not', () => {
    assert.equal(open.permits('http', '93.184.216.34', '93.184.216.34'), false);
    const policy = new DestinationPolicy({ allow: ['127.0.0.1', 'api.example'] });
    assert.equal(policy.permits('http', '127.0.0.1', '127.0.0.1'), true);
    assert.equal(policy.permits('http', 'api.example', '93.184.216.34'), true);
    assert.equal(policy.permits('http', 'other.example', '93.184.216.35'), false);
    assert.equal(policy.permits('http', 'localhost', '::1'), false);
  });

  test('malformed entries are refused', () => {
    for (const entry of ['10.0.0.0/33', '::1/129', 'not a host', '1.2.3.4/x', 'http://x/', '']) {
      assert.throws(() => new DestinationPolicy({ allow: [entry] }), /not a/, entry);
    }
  });
});

const ORIGIN = { address: '10.0.0.1', port: 5683 };
const PROXY = { address: '10.0.0.3', port: 5683 };
const CLIENT = { address: '10.0.0.2', port: 40000 };

function topology(allowDestinations?: readonly string[]) {
  const net = new FakeNetwork();
  const origin = new CoapServer(net.endpoint(ORIGIN, {}, 1));
  addDemoResources(origin, { tick: false });
  const proxyServer = new CoapServer(net.endpoint(PROXY, {}, 3));
  const upstreamEndpoint = net.endpoint({ address: PROXY.address, port: 40001 }, {}, 4);
  new ForwardProxy(proxyServer, { upstream: { endpoint: async () => upstreamEndpoint }, ...(allowDestinations ? { allowDestinations } : {}) });
  const client = net.endpoint(CLIENT, {}, 2);
  const get = (options: CoapOption[]) =>
    net.until(securedSender(client, PROXY, PLAIN)({ type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options, payload: EMPTY_BYTES }));
  const upstream = () => net.log.filter((d) => d.from.port === 40001);
  return { get, upstream };
}
const proxyUri = (uri: string): CoapOption => ({ number: OptionNumber.ProxyUri, value: encodeString(uri) });

describe('ForwardProxy destinations', () => {
  test('a private origin gets 5.05 by default and nothing is sent to it', async () => {
    const t = topology();
    const r = await t.get([proxyUri('coap://10.0.0.1:5683/hello')]);
    assert.equal(r.message.code, ResponseCode.ProxyingNotSupported);
    assert.equal(t.upstream().length, 0);
    const scheme = await t.get([{ number: OptionNumber.UriHost, value: encodeString('10.0.0.1') }, { number: OptionNumber.ProxyScheme, value: encodeString('coap') }]);
    assert.equal(scheme.message.code, ResponseCode.ProxyingNotSupported, 'Proxy-Scheme with Uri-Host too');
  });

  test('allowed, it is forwarded', async () => {
    const t = topology(['10.0.0.0/8']);
    assert.equal((await t.get([proxyUri('coap://10.0.0.1:5683/hello')])).message.code, ResponseCode.Content);
    assert.equal(t.upstream().length, 1);
  });

  test('Proxy-Scheme http without an HTTP upstream configured: 5.05', async () => {
    const t = topology(['10.0.0.0/8']);
    assert.equal((await t.get([proxyUri('http://10.0.0.1/secret')])).message.code, ResponseCode.ProxyingNotSupported);
  });
});

describe('HTTP→CoAP cross-proxy destinations', () => {
  test('a loopback CoAP target gets 403 unless allowed, also by a name that resolves there; nothing reaches it', async () => {
    const origin = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
    let requests = 0;
    origin.resource('/x', { GET: () => (requests++, { code: ResponseCode.Content, payload: 'inside' }) });
    const client = new CoapClient();
    const closed = await startHttpCrossProxy({ client, timeout: 2000 });
    const open = await startHttpCrossProxy({ client, timeout: 2000, allowDestinations: ['127.0.0.0/8'] });
    try {
      const path = (host: string) => `/hc/coap://${host}:${origin.address().port}/x`;
      for (const host of ['127.0.0.1', 'localhost']) {
        const refused = await fetch(`http://127.0.0.1:${closed.address().port}${path(host)}`);
        assert.equal(refused.status, 403, host);
      }
      assert.equal(requests, 0);
      const served = await fetch(`http://127.0.0.1:${open.address().port}${path('127.0.0.1')}`);
      assert.equal(served.status, 200);
      assert.equal(await served.text(), 'inside');
    } finally {
      await closed.close();
      await open.close();
      await client.close();
      await origin.close();
    }
  });
});

describe('CoAP→HTTP pinned to the approved address', () => {
  test('coapToHttp with `address` connects there without resolving the host again (no DNS rebinding window)', async () => {
    const server = createServer((req, res) => res.end(`host ${req.headers.host}`));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      // .invalid never resolves (RFC 6761 §6.4): only the pinned address can have been used.
      const r = await coapToHttp({ method: Method.GET, uri: `http://rebind.invalid:${port}/x`, address: '127.0.0.1', timeout: 5000 });
      assert.equal(r.code, ResponseCode.Content);
      assert.equal(Buffer.from(r.payload).toString(), `host rebind.invalid:${port}`, 'the Host header keeps the name');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

// --- the CLI: `proxy --forward` is no open gateway ------------------------------------------------

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'coapsec');
const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) child.kill('SIGKILL');
});

async function startProxy(args: string[]): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [BIN, 'proxy', '--forward', '--bind', '127.0.0.1:0', ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`proxy did not start: ${stderr}`)), 10_000);
    child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
      const m = /coapsec proxy on coap:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`proxy exited with ${code}: ${stderr}`));
    });
  });
  return {
    port,
    stop: async () => {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      children.delete(child);
    },
  };
}

/** One NON GET with Proxy-Uri to the proxy on loopback; its response (NON, or a CON to acknowledge). */
async function proxiedGet(proxyPort: number, uri: string): Promise<CoapMessage> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  try {
    const token = Uint8Array.of(7, 7, 7, 7);
    const request: CoapMessage = { type: MessageType.NON, code: Method.GET, messageId: 0x1234, token, options: [proxyUri(uri)], payload: EMPTY_BYTES };
    return await new Promise<CoapMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no response from the proxy within 8 s')), 8000);
      socket.on('message', (data) => {
        const m = decodeMessage(data);
        if (m.code === 0) return;
        clearTimeout(timer);
        resolve(m);
      });
      socket.send(encodeMessage(request), proxyPort, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

/** Runs `coapsec proxy ARGS` expecting it to stop at once; exit code and stderr. */
function proxyExit(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'proxy', ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`coapsec proxy ${args.join(' ')} still running after 10 s`));
    }, 10_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stderr });
    });
  });
}

describe('coapsec proxy: destination flags, usage errors', () => {
  for (const [args, pattern] of [
    [['--forward', '--http-upstream'], /--http-upstream needs --allow-destination/],
    [['--forward', '--allow-destination', '10.0.0.0/40'], /--allow-destination: not a CIDR network/],
    [['--forward', '--allow-destination', 'two words'], /--allow-destination: not an address, CIDR network or host name/],
    [['--reverse', '/a=coap://127.0.0.1/', '--allow-destination', '10.0.0.0/8'], /--allow-destination concerns --forward and --http/],
    [['--http', '127.0.0.1:0', '--http-upstream'], /--http-upstream concerns --forward/],
    [['--forward', '--http-host', 'proxy.lan'], /--http-host and --http-allow-origin need --http/],
    [['--http', '127.0.0.1:0', '--http-allow-origin', 'https://app.example/path'], /--http-allow-origin needs an origin/],
  ] as const) {
    test(args.join(' '), async () => {
      const r = await proxyExit([...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
    });
  }
});

describe('coapsec proxy --forward', () => {
  let secretServer: Server;
  let httpRequests = 0;
  let httpPort = 0;

  test('without --http-upstream, Proxy-Uri http://127.0.0.1/secret gets 5.05 and the HTTP server sees nothing', async () => {
    secretServer = createServer((_req, res) => {
      httpRequests++;
      res.writeHead(200, { 'content-type': 'text/plain' }).end('the secret');
    });
    await new Promise<void>((resolve) => secretServer.listen(0, '127.0.0.1', resolve));
    httpPort = (secretServer.address() as AddressInfo).port;
    const proxy = await startProxy([]);
    try {
      const r = await proxiedGet(proxy.port, `http://127.0.0.1:${httpPort}/secret`);
      assert.equal(r.code, ResponseCode.ProxyingNotSupported, decodeString(r.payload));
      assert.equal(httpRequests, 0);
    } finally {
      await proxy.stop();
    }
  });

  test('with --http-upstream, only --allow-destination entries: loopback needs naming, then it is served', async () => {
    const refusing = await startProxy(['--http-upstream', '--allow-destination', '192.0.2.0/24']);
    try {
      const r = await proxiedGet(refusing.port, `http://127.0.0.1:${httpPort}/secret`);
      assert.equal(r.code, ResponseCode.ProxyingNotSupported);
      assert.equal(httpRequests, 0);
    } finally {
      await refusing.stop();
    }
    const allowing = await startProxy(['--http-upstream', '--allow-destination', '127.0.0.1']);
    try {
      const r = await proxiedGet(allowing.port, `http://127.0.0.1:${httpPort}/secret`);
      assert.equal(r.code, ResponseCode.Content);
      assert.equal(decodeString(r.payload), 'the secret');
      assert.equal(httpRequests, 1);
    } finally {
      await allowing.stop();
      await new Promise<void>((resolve) => secretServer.close(() => resolve()));
    }
  });

  test('a CoAP origin on loopback: 5.05 unless --allow-destination names it', async () => {
    const origin = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
    addDemoResources(origin, { tick: false });
    const target = `coap://127.0.0.1:${origin.address().port}/hello`;
    try {
      const closed = await startProxy([]);
      try {
        assert.equal((await proxiedGet(closed.port, target)).code, ResponseCode.ProxyingNotSupported);
        const byName = await proxiedGet(closed.port, target.replace('127.0.0.1', 'localhost'));
        assert.equal(byName.code, ResponseCode.ProxyingNotSupported, 'a name is judged by the address it resolves to');
      } finally {
        await closed.stop();
      }
      const open = await startProxy(['--allow-destination', '127.0.0.0/8']);
      try {
        const r = await proxiedGet(open.port, target);
        assert.equal(r.code, ResponseCode.Content);
        assert.equal(decodeString(r.payload), 'Hello from coapsec');
      } finally {
        await open.stop();
      }
    } finally {
      await origin.close();
    }
  });
});
