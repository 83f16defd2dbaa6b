/**
 * The exit codes of the README's table, one test each: 0 2.xx, 1 anything else, 2 usage, 3 no
 * response, 4 4.xx, 5 5.xx, 6 security failure. And a port in use ends the process at once.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeMessage, encodeEmpty } from '../src/coap/codec.js';
import { MessageType } from '../src/coap/message.js';
import { addDemoResources } from '../src/demo/resources.js';
import { CoapServer } from '../src/server/server.js';
import { assertUsageError, coapsec, killChildren, startDaemon } from './support/cli-harness.js';

let server: CoapServer;
let base: string;
let tmp: string;
let resetter: Socket;
let resetPort: number;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'coapsec-exit-'));
  server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  addDemoResources(server);
  base = `coap://127.0.0.1:${server.address().port}`;
  // A peer that rejects every Confirmable message with RST (RFC 7252 §4.2).
  resetter = createSocket('udp4');
  resetter.on('message', (data, rinfo) => {
    const message = decodeMessage(data);
    if (message.type === MessageType.CON) resetter.send(encodeEmpty(MessageType.RST, message.messageId), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => resetter.bind(0, '127.0.0.1', () => resolve()));
  resetPort = resetter.address().port;
});

after(async () => {
  killChildren();
  resetter.close();
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('exit codes', { concurrency: 4 }, () => {
  test('0: a 2.xx response', async () => {
    const r = await coapsec(['get', `${base}/hello`]);
    assert.equal(r.code, 0, r.stderr);
  });

  test('1: anything else — here the output cannot be written (-o /dev/full), said in one line', async () => {
    const r = await coapsec(['get', `${base}/hello`, '-o', '/dev/full']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^coapsec: cannot write to \/dev\/full: ENOSPC\n$/);
  });

  test('2: coaps:// without DTLS credentials is a usage error, before any packet is sent', async () => {
    assertUsageError(await coapsec(['get', 'coaps://127.0.0.1:1/hello']), /coaps:\/\/127\.0\.0\.1:1\/hello needs DTLS credentials/);
    assertUsageError(await coapsec(['observe', 'coaps://127.0.0.1:1/time']), /needs DTLS credentials/);
    assertUsageError(await coapsec(['get', `${base}/hello`, '--proxy', 'coaps://127.0.0.1:1']), /needs DTLS credentials/);
  });

  test('3: no response — an RST, said as such', async () => {
    const r = await coapsec(['get', `coap://127.0.0.1:${resetPort}/x`]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^coapsec: .*(RST|reset)/i);
  });

  test('3: no response — silence until --timeout', async () => {
    const silent = createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', () => resolve()));
    try {
      const r = await coapsec(['get', `coap://127.0.0.1:${silent.address().port}/x`, '--timeout', '0.5']);
      assert.equal(r.code, 3, r.stderr);
    } finally {
      silent.close();
    }
  });

  test('4: a 4.xx response', async () => {
    assert.equal((await coapsec(['get', `${base}/nothing`])).code, 4);
  });

  test('5: a 5.xx response', async () => {
    const r = await coapsec(['get', `${base}/hello`, '-O', 'Proxy-Uri,coap://elsewhere/hello']);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /5\.05 Proxying Not Supported/);
  });
});

describe('6: security failures', () => {
  test('OSCORE: a kid the server does not know ("Security context not found")', async () => {
    const dir = join(tmp, 'unknown-kid');
    const serverPair = join(dir, 'server-pair');
    const strangerPair = join(dir, 'stranger-pair');
    assert.equal((await coapsec(['credentials', 'new', '--peer', 'alice', '--out-dir', serverPair])).code, 0);
    const serve = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--plugtest', '--credentials', join(serverPair, 'server.json')], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
    try {
      const match = `coap://127.0.0.1:${serve.port}/*`;
      assert.equal((await coapsec(['credentials', 'new', '--peer', 'mallory', '--out-dir', strangerPair, '--match', match])).code, 0);
      const r = await coapsec(['get', `coap://127.0.0.1:${serve.port}/oscore/hello/1`, '--credentials', join(strangerPair, 'client.json')]);
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /^coapsec: security failure: .*Security context not found/);
    } finally {
      await serve.stop();
    }
  });

  test('OSCORE: the right kid with the wrong master secret (verification fails)', async () => {
    const pair = join(tmp, 'wrong-secret');
    assert.equal((await coapsec(['credentials', 'new', '--peer', 'alice', '--out-dir', pair])).code, 0);
    const serve = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--plugtest', '--credentials', join(pair, 'server.json')], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
    try {
      const client = JSON.parse(readFileSync(join(pair, 'client.json'), 'utf8')) as { oscore: Array<{ match: string; context: { masterSecret: string } }> };
      client.oscore[0]!.match = `coap://127.0.0.1:${serve.port}/*`;
      client.oscore[0]!.context.masterSecret = '00'.repeat(16);
      writeFileSync(join(pair, 'client.json'), JSON.stringify(client), { mode: 0o600 });
      const r = await coapsec(['get', `coap://127.0.0.1:${serve.port}/oscore/hello/1`, '--credentials', join(pair, 'client.json')]);
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /^coapsec: security failure: /);
    } finally {
      await serve.stop();
    }
  });

  test('DTLS: a wrong pre-shared key ends the handshake with an alert', async () => {
    const serve = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--psk-identity', 'alice', '--psk', '0x00112233445566778899aabbccddeeff'], /serving on coaps:\/\/127\.0\.0\.1:(\d+)/);
    try {
      const r = await coapsec(['get', `coaps://127.0.0.1:${serve.port}/hello`, '--psk-identity', 'alice', '--psk', '0xffeeddccbbaa99887766554433221100', '--timeout', '5']);
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /^coapsec: security failure: .*alert/);
    } finally {
      await serve.stop();
    }
  });
});

describe('a port in use ends the process with a clear message', { concurrency: 2 }, () => {
  test('serve on a CoAP port in use: exit 2, EADDRINUSE named', async () => {
    assertUsageError(await coapsec(['serve', '--bind', `127.0.0.1:${server.address().port}`]), /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
  });

  test('proxy --http on a TCP port in use: exits (does not keep running without its HTTP side)', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (taken.address() as { port: number }).port;
      const r = await coapsec(['proxy', '--bind', '127.0.0.1:0', '--forward', '--http', `127.0.0.1:${port}`], { timeout: 5000 });
      assertUsageError(r, new RegExp(`--http: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`));
    } finally {
      taken.close();
    }
  });
});
