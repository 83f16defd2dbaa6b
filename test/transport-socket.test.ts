/**
 * The socket under both transports (src/transport/socket.ts): sends to IP literals and host
 * names, and close() that lets the last datagrams leave.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import { UdpTransport } from '../src/transport/udp.js';

async function receiver(): Promise<{ port: number; got: string[]; close: () => void }> {
  const socket = createSocket('udp4');
  const got: string[] = [];
  socket.on('message', (m) => got.push(m.toString()));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return { port: socket.address().port, got, close: () => socket.close() };
}

async function until(condition: () => boolean, ms = 1000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

test('UDP transport: an IP literal and a host name both reach the peer', async () => {
  const r = await receiver();
  const t = await UdpTransport.bind();
  try {
    t.send(Buffer.from('literal'), { address: '127.0.0.1', port: r.port });
    t.send(Buffer.from('name'), { address: 'localhost', port: r.port });
    await until(() => r.got.length === 2);
    assert.deepEqual([...r.got].sort(), ['literal', 'name']);
  } finally {
    await t.close();
    r.close();
  }
});

test('UDP transport: datagrams written just before close() still leave', async () => {
  // Regression: dgram's close() cancelled sends still resolving their address or queued in libuv.
  const r = await receiver();
  const t = await UdpTransport.bind();
  for (let i = 0; i < 20; i++) t.send(Buffer.from(`last-${i}`), { address: i % 2 ? 'localhost' : '127.0.0.1', port: r.port });
  await t.close();
  await until(() => r.got.length === 20);
  r.close();
  assert.equal(r.got.length, 20);
});
