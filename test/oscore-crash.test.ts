/**
 * RFC 8613 Appendix B.1: OSCORE server and client processes killed with SIGKILL under load and
 * restarted. A relay between them records every datagram; no (key, nonce) pair may ever repeat,
 * and traffic must resume — for a restarted server through the Appendix B.1.2 Echo exchange.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { decodeMessage } from '../src/coap/codec.js';
import { getOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { decodeOscoreOption } from '../src/oscore/option.js';

const PEER_SCRIPT = fileURLToPath(new URL('./support/oscore-peer.js', import.meta.url));
const SECRET = '0102030405060708090a0b0c0d0e0f10';

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

test('SIGKILL of server and client under load: no nonce reuse, traffic resumes through Echo', { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-crash-'));
  const serverPort = await freeUdpPort();
  const relay = createSocket('udp4');
  const upstream = createSocket('udp4');
  await new Promise<void>((resolve) => relay.bind(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => upstream.bind(0, '127.0.0.1', resolve));
  const relayPort = relay.address().port;
  const uri = `coap://127.0.0.1:${relayPort}/oscore/hello/1`;
  writeFileSync(join(dir, 'server.json'), JSON.stringify({ stateDirectory: 'server-state', recipients: { '': { name: 'client', context: { masterSecret: SECRET, senderId: '01', sequenceSaveInterval: 16 } } } }));
  writeFileSync(join(dir, 'client.json'), JSON.stringify({ stateDirectory: 'client-state', oscore: [{ match: `coap://127.0.0.1:${relayPort}/*`, context: { masterSecret: SECRET, senderId: '', recipientId: '01', sequenceSaveInterval: 16 } }] }));

  // The relay: client → relay → server and back, recording every datagram.
  const recorded: Array<{ fromClient: boolean; data: Buffer }> = [];
  let clientAddress: { address: string; port: number } | undefined;
  relay.on('message', (data, rinfo) => {
    clientAddress = { address: rinfo.address, port: rinfo.port };
    recorded.push({ fromClient: true, data });
    upstream.send(data, serverPort, '127.0.0.1');
  });
  upstream.on('message', (data) => {
    recorded.push({ fromClient: false, data });
    if (clientAddress) relay.send(data, clientAddress.port, clientAddress.address);
  });

  const children: ChildProcess[] = [];
  let oks = 0;
  const start = async (mode: 'server' | 'client'): Promise<ChildProcess> => {
    const child = spawn(process.execPath, [PEER_SCRIPT, mode, mode === 'server' ? String(serverPort) : uri, join(dir, `${mode}.json`)], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        const text = d.toString();
        if (text.includes('ready')) resolve();
        oks += text.split('\n').filter((line) => line === 'ok').length;
      });
      child.once('exit', (code, signal) => reject(new Error(`${mode} exited (${code ?? signal}): ${stderr}`)));
    });
    if (mode === 'server') await ready;
    else ready.catch(() => {});
    return child;
  };
  const kill = async (child: ChildProcess): Promise<void> => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  };
  const waitForOks = async (count: number, what: string): Promise<void> => {
    const target = oks + count;
    const deadline = Date.now() + 20_000;
    while (oks < target) {
      if (Date.now() > deadline) assert.fail(`traffic did not resume ${what}: ${oks} of ${target} successful requests`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  t.after(() => {
    for (const c of children) c.kill('SIGKILL');
    relay.close();
    upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let server = await start('server');
  let client = await start('client');
  await waitForOks(60, 'at first');
  for (let round = 0; round < 2; round++) {
    await kill(server);
    server = await start('server');
    await waitForOks(40, `after server restart ${round + 1}`);
    await kill(client);
    client = await start('client');
    await waitForOks(40, `after client restart ${round + 1}`);
  }
  await kill(client);
  await kill(server);

  // Every Partial IV a sender used, per sender: a repeat would be a (key, nonce) reuse.
  const used = new Map<string, string>();
  let serverPartialIvs = 0;
  for (const { fromClient, data } of recorded) {
    const message = decodeMessage(data);
    const option = getOption(message, OptionNumber.Oscore);
    if (option === undefined) continue;
    const value = decodeOscoreOption(option);
    if (!value.piv) continue; // a response without Partial IV uses its request's nonce
    const key = `${fromClient ? 'client' : 'server'}:${Buffer.from(value.piv).toString('hex')}`;
    const previous = used.get(key);
    // A CoAP retransmission repeats the very same datagram: same bytes, not a new encryption.
    const fingerprint = data.toString('hex');
    if (previous !== undefined) assert.equal(previous, fingerprint, `${key} was used for two different messages`);
    used.set(key, fingerprint);
    if (!fromClient) serverPartialIvs++;
  }
  const clientPartialIvs = [...used.keys()].filter((k) => k.startsWith('client:')).length;
  assert.ok(clientPartialIvs >= 60 + 4 * 40, `every successful request used its own Partial IV (${clientPartialIvs} seen)`);
  assert.ok(serverPartialIvs >= 2, 'each restarted server challenged with a protected Echo carrying its own Partial IV (B.1.2)');
});
