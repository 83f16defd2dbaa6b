/**
 * kill -9 of either process at each KUDOS state (draft-ietf-core-oscore-key-update §4.3.3.1,
 * docs/kudos.md "Persistence and crashes"), with real `coapsec serve` and client processes talking
 * through an in-test UDP relay that records every datagram and can drop them to freeze an update
 * at a chosen state. After each crash the killed side restarts from its state directory, traffic
 * resumes, and the capture shows no (key, nonce) pair used twice (kudos-nonce-audit.ts).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { getOption } from '../src/coap/message.js';
import { decodeMessage } from '../src/coap/codec.js';
import { OptionNumber } from '../src/coap/options.js';
import { decodeOscoreOption } from '../src/oscore/option.js';
import { BIN, ROOT, coapsec } from './support/cli-harness.js';
import { ContextCollector, auditNonces } from './kudos-nonce-audit.js';
import { UdpRelay, type Datagram } from './kudos-relay.js';

const root = mkdtempSync(join(tmpdir(), 'coapsec-kudos-crash-'));
const SECRET = '0102030405060708090a0b0c0d0e0f10';
const WAIT_MS = 10_000;
const running = new Set<ChildProcess>();

after(() => {
  for (const child of running) child.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

/** A child process whose stderr can be waited on and which can be killed with SIGKILL. */
class Child {
  stderr = '';
  readonly exited: Promise<number | null>;
  readonly #waiters: (() => void)[] = [];
  constructor(readonly process: ChildProcess) {
    running.add(process);
    this.exited = new Promise((resolve) => process.once('exit', (code) => (running.delete(process), resolve(code))));
    process.stderr!.on('data', (b: Buffer) => {
      this.stderr += b.toString();
      for (const w of this.#waiters.splice(0)) w();
    });
    process.stdout!.resume();
  }

  static start(args: readonly string[]): Child {
    return new Child(spawn(globalThis.process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  waitFor(pattern: RegExp): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${WAIT_MS} ms: ${this.stderr}`)), WAIT_MS);
      const check = (): void => {
        const m = pattern.exec(this.stderr);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        } else this.#waiters.push(check);
      };
      check();
    });
  }

  async kill9(): Promise<void> {
    this.process.kill('SIGKILL');
    await this.exited;
  }
}

/** One scenario's world: a served credentials file, a client file aimed at the relay, the capture. */
async function world(name: string, serverKudos: Record<string, number> = {}) {
  const dir = mkdtempSync(join(root, `${name}-`));
  // Each scenario its own common state directory: the same context is configured in every one.
  process.env['COAPSEC_STATE_DIR'] = join(dir, 'common-state');
  const serverFile = join(dir, 'server.json');
  writeFileSync(serverFile, JSON.stringify({ stateDirectory: 'server-state', recipients: { '01': { name: 'client', context: { masterSecret: SECRET, senderId: '02', kudos: serverKudos } } } }));
  const startServer = async (): Promise<{ child: Child; port: number }> => {
    const child = Child.start(['serve', '--credentials', serverFile, '--bind', '127.0.0.1:0', '-v']);
    const m = await child.waitFor(/serving on coap:\/\/127\.0\.0\.1:(\d+)/);
    return { child, port: Number(m[1]) };
  };
  let server = await startServer();
  const relay = await UdpRelay.start({ address: '127.0.0.1', port: server.port });
  const clientFile = join(dir, 'client.json');
  writeFileSync(clientFile, JSON.stringify({ stateDirectory: 'client-state', oscore: [{ match: `coap://127.0.0.1:${relay.port}/*`, context: { masterSecret: SECRET, senderId: '01', recipientId: '02', kudos: {} } }] }));
  const base = `coap://127.0.0.1:${relay.port}`;
  const contexts = new ContextCollector();
  contexts.add({ masterSecret: Buffer.from(SECRET, 'hex'), masterSalt: new Uint8Array(0) });
  const snapshot = (): void => contexts.snapshot([join(dir, 'server-state'), join(dir, 'client-state')]);
  return {
    relay,
    base,
    server: () => server.child,
    async restartServer(): Promise<void> {
      snapshot();
      server = await startServer();
      relay.server = { address: '127.0.0.1', port: server.port };
    },
    client: (args: readonly string[]) => Child.start([...args, '--credentials', clientFile]),
    serverPort: () => server.port,
    async get(): Promise<void> {
      const r = await coapsec(['get', `${base}/hello`, '--credentials', clientFile], { timeout: 15_000 });
      snapshot();
      assert.equal(r.code, 0, `get failed: ${r.stderr}`);
    },
    async rekey(): Promise<void> {
      const r = await coapsec(['rekey', `${base}/`, '--credentials', clientFile], { timeout: 15_000 });
      snapshot();
      assert.equal(r.code, 0, `rekey failed: ${r.stderr}`);
    },
    async finish(): Promise<void> {
      snapshot();
      const audit = auditNonces(relay.datagrams, contexts);
      relay.close();
      await server.child.kill9();
      assert.equal(audit.unattributed, 0, 'every protected datagram verified by a known context');
      assert.ok(audit.attributed > 4);
      assert.deepEqual(audit.reused, [], 'no (key, nonce) pair used twice');
    },
  };
}

const isConvergent = (d: Datagram): boolean => {
  try {
    const value = getOption(decodeMessage(d.data), OptionNumber.Oscore);
    const kudos = value === undefined ? undefined : decodeOscoreOption(value).kudos;
    return kudos !== undefined && (kudos.x & 0x40) !== 0;
  } catch {
    return false;
  }
};

test('client killed in BUSY and server killed in PENDING (the convergent response lost): both restart, traffic and a new update work', async () => {
  const w = await world('busy-pending');
  await w.get();
  w.relay.pass = (d) => d.from === 'client';
  const rekey = w.client(['rekey', `${w.base}/`, '-v']);
  await rekey.waitFor(/IDLE -> BUSY/);
  await w.server().waitFor(/kudos client: BUSY -> PENDING/);
  await rekey.kill9();
  await w.server().kill9();
  w.relay.pass = () => true;
  await w.restartServer();
  await w.get();
  await w.get();
  await w.rekey();
  await w.get();
  await w.finish();
});

test('server killed in PENDING after the client completed: it resumes PENDING and the next request confirms CTX_NEW', async () => {
  const w = await world('pending');
  await w.get();
  await w.rekey();
  await w.server().waitFor(/kudos client: BUSY -> PENDING/);
  await w.server().kill9();
  await w.restartServer();
  await w.get();
  await w.server().waitFor(/kudos client: PENDING -> IDLE/);
  await w.get();
  await w.finish();
});

test('server killed in BUSY (it started the update in a response that was lost): it restarts on CTX_OLD and updates again', async () => {
  const w = await world('server-busy', { maxMessages: 1 });
  await w.get();
  w.relay.pass = (d) => d.from === 'client';
  const get = w.client(['get', `${w.base}/hello`]);
  await w.server().waitFor(/kudos client: IDLE -> BUSY/);
  await w.server().kill9();
  await get.kill9();
  w.relay.pass = () => true;
  await w.restartServer();
  await w.get();
  await w.get();
  await w.get();
  await w.server().waitFor(/kudos client: update completed/);
  await w.finish();
});

test('client killed in PENDING (its convergent request lost): it resumes PENDING and its next request completes the update', async () => {
  const w = await world('client-pending', { maxMessages: 1 });
  await w.get();
  let convergentSeen = false;
  w.relay.pass = (d) => {
    if (d.from === 'client' && isConvergent(d)) convergentSeen = true;
    return !(convergentSeen && d.from === 'client');
  };
  const get = w.client(['get', `${w.base}/hello`]);
  await w.server().waitFor(/kudos client: IDLE -> BUSY/);
  // The client has the divergent response: it is PENDING on disk (its convergent request may or may not have left).
  const deadline = Date.now() + WAIT_MS;
  while (!convergentSeen && Date.now() < deadline && running.has(get.process)) await new Promise((resolve) => setTimeout(resolve, 20));
  await get.kill9();
  w.relay.pass = () => true;
  await w.get();
  await w.server().waitFor(/kudos client: update completed/);
  await w.get();
  await w.finish();
});

/** Sends `data` straight to the server from a fresh socket, as an attacker replaying it; resolves with the socket's port once an answer came. */
async function replayTo(port: number, data: Buffer): Promise<number> {
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer to the replayed request within 5 s')), 5000);
      socket.once('message', () => (clearTimeout(timer), resolve()));
      socket.send(data, port, '127.0.0.1');
    });
    return socket.address().port;
  } finally {
    socket.close();
  }
}

test('a request captured before kill -9 of the server and replayed after its restart is refused with an Echo challenge (RFC 8613 B.1.2); the client carries on', async () => {
  const w = await world('replay-after-restart');
  try {
    await w.get();
    await w.rekey();
    await w.get();
    const captured = w.relay.datagrams.filter((d) => d.from === 'client').at(-1)!;
    await w.server().kill9();
    await w.restartServer();
    const attacker = await replayTo(w.serverPort(), captured.data);
    // Never processed: the server logs the challenge for the attacker's address, no handler answer.
    await w.server().waitFor(new RegExp(`127\\.0\\.0\\.1:${attacker} .*(OSCORE refused: Echo challenge|GET /hello 2\\.05)`));
    assert.match(w.server().stderr, new RegExp(`127\\.0\\.0\\.1:${attacker} .*OSCORE refused: Echo challenge`));
    assert.doesNotMatch(w.server().stderr, new RegExp(`127\\.0\\.0\\.1:${attacker} client oscore GET /hello 2\\.05`));
    await w.get();
    assert.match(w.server().stderr, /client oscore GET \/hello 2\.05/, 'the legitimate client was served after its Echo round trip');
  } catch (error) {
    w.relay.close();
    throw error;
  }
  await w.finish();
});
