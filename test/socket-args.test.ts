/**
 * Socket buffer sizes for `serve` and `proxy` (issue 17 item 10): --socket-buffer, --recv-buffer,
 * --send-buffer, parsed once (src/cli/socket-args.ts) and carried to the sockets.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type dgram from 'node:dgram';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { socketBuffers } from '../src/cli/socket-args.js';
import { UsageError } from '../src/cli/errors.js';
import { CoapServer } from '../src/server/server.js';

describe('socketBuffers', () => {
  test('one size for both, or each on its own; K and M suffixes', () => {
    assert.deepEqual(socketBuffers({}), {});
    assert.deepEqual(socketBuffers({ 'socket-buffer': '4M' }), { receiveBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    assert.deepEqual(socketBuffers({ 'socket-buffer': '1m', 'recv-buffer': '8M' }), { receiveBufferSize: 8 << 20, sendBufferSize: 1 << 20 });
    assert.deepEqual(socketBuffers({ 'send-buffer': '256k' }), { sendBufferSize: 256 << 10 });
    assert.deepEqual(socketBuffers({ 'recv-buffer': '1048576' }), { receiveBufferSize: 1 << 20 });
  });

  test('sizes that are no sizes, or smaller than one datagram, are usage errors', () => {
    for (const text of ['', 'lots', '12', '-1M', '1.5M', '2G', '4096M', '64']) {
      assert.throws(() => socketBuffers({ 'socket-buffer': text }), (e: unknown) => e instanceof UsageError && /--socket-buffer needs a size/.test((e as Error).message), text);
    }
  });
});

test('CoapServer.listen sets the sizes on its socket', async () => {
  const size = 2 << 20;
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, receiveBufferSize: size, sendBufferSize: size });
  try {
    const socket = (server.endpoint.transport as unknown as { socket: dgram.Socket }).socket;
    // Linux doubles what is asked (for its bookkeeping) and caps it at rmem_max/wmem_max; either
    // way it is above the 212 KB default.
    assert.ok(socket.getRecvBufferSize() > 212_992, `receive buffer ${socket.getRecvBufferSize()}`);
    assert.ok(socket.getSendBufferSize() > 212_992, `send buffer ${socket.getSendBufferSize()}`);
  } finally {
    await server.close();
  }
});

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'coapsec');

/** Starts `coapsec ARGS`, waits for its "on coap://" line (or its exit), then stops it; exit code and stderr. */
function runUntilListening(args: string[]): Promise<{ code: number | null; stderr: string; listened: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let listened = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`coapsec ${args.join(' ')} neither listened nor exited within 10 s: ${stderr}`));
    }, 10_000);
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (!listened && /on coap:\/\/127\.0\.0\.1:\d+/.test(stderr)) {
        listened = true;
        child.kill('SIGTERM');
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, listened });
    });
  });
}

describe('coapsec serve and proxy take the flags', () => {
  test('serve --socket-buffer 4M and proxy --forward --recv-buffer 2M --send-buffer 1M listen', async () => {
    const serve = await runUntilListening(['serve', '--bind', '127.0.0.1:0', '--socket-buffer', '4M']);
    assert.ok(serve.listened, serve.stderr);
    const proxy = await runUntilListening(['proxy', '--forward', '--bind', '127.0.0.1:0', '--recv-buffer', '2M', '--send-buffer', '1M']);
    assert.ok(proxy.listened, proxy.stderr);
  });

  test('a bad size is a usage error (exit 2, one line)', async () => {
    for (const args of [['serve', '--bind', '127.0.0.1:0', '--socket-buffer', 'huge'], ['proxy', '--forward', '--bind', '127.0.0.1:0', '--recv-buffer', '10']]) {
      const r = await runUntilListening(args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^coapsec: --(socket|recv)-buffer needs a size in bytes/m);
    }
  });
});
