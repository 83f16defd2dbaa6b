/**
 * A proxy that relays group requests (draft-ietf-core-groupcomm-proxy), end to end between
 * processes in network namespaces: the flow of the OSCORE-capable-proxies use case (client →
 * OSCORE client–proxy + Group OSCORE client–servers → proxy → IP multicast to 3 servers → 3
 * responses back, each with Reply-From), a client the proxy does not allow (4.01), Observe of the
 * group through the proxy, the proxy's cache of a group's responses (§7), and a capture of every leg at the proxy (tshark on its interface)
 * showing that neither the request's nor the responses' plaintext ever reached it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GroupNet } from './support/group-netns.js';
import { runCli } from './support/group-cli.js';
import { encodeReplyFrom } from '../src/group/reply-from.js';

const PORT = 5798;
const PROXY_PORT = 5799;
const GROUP = `224.0.1.187:${PORT}`;
const SERVERS = ['s1', 's2', 's3'];
const SECRET = '0102030405060708090a0b0c0d0e0f10';
/** What the client asks for and gets back: it must never be visible to the proxy. */
const SECRET_PAYLOAD = 'plaintext-7f3a-only-for-the-servers';

interface MemberFile {
  senderId: string;
}

/** tshark on one host's eth0, written to `file` until stop(). */
class Capture {
  readonly #child: ChildProcess;
  #stderr = '';

  private constructor(readonly file: string, ns: string) {
    this.#child = spawn('ip', ['netns', 'exec', ns, 'tshark', '-i', 'eth0', '-w', file, '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child.stderr!.on('data', (chunk: Buffer) => (this.#stderr += chunk.toString()));
  }

  static async start(file: string, ns: string): Promise<Capture> {
    const capture = new Capture(file, ns);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tshark did not start capturing: ${capture.#stderr}`)), 15_000);
      const check = (): void => {
        if (/Capturing on/.test(capture.#stderr)) {
          clearTimeout(timer);
          resolve();
        }
      };
      capture.#child.stderr!.on('data', check);
      capture.#child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`tshark exited (${code}): ${capture.#stderr} — the capture test needs tshark`));
      });
    });
    return capture;
  }

  async stop(): Promise<Buffer> {
    await new Promise<void>((resolve) => {
      if (this.#child.exitCode !== null) return resolve();
      this.#child.once('exit', () => resolve());
      this.#child.kill('SIGINT');
      setTimeout(() => this.#child.kill('SIGKILL'), 5000).unref();
    });
    return readFileSync(this.file);
  }

  /** "SRC DST UDP-PAYLOAD-LENGTH" per UDP datagram of the capture. */
  legs(): string[] {
    const result = spawnSync('tshark', ['-r', this.file, '-Y', 'udp', '-T', 'fields', '-e', 'ip.src', '-e', 'ip.dst'], { encoding: 'utf8', timeout: 15_000 });
    return result.stdout.trim().split('\n').filter((l) => l !== '').map((l) => l.split('\t').join(' → '));
  }
}

describe('group requests through a proxy: OSCORE to the proxy, Group OSCORE to 3 servers', () => {
  let net: GroupNet;
  let proxy: ChildProcess;
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-gp-'));
  const file = (name: string): string => join(dir, `${name}.json`);
  const members = new Map<string, MemberFile>();
  const proxyUri = (): string => `coap://${net.host('p').v4}:${PROXY_PORT}`;

  before(async () => {
    const state = join(dir, 'lights-gm.json');
    assert.equal((await runCli(['group', 'create', state, '--name', 'lights', '--address', GROUP])).code, 0);
    for (const name of ['client', ...SERVERS]) assert.equal((await runCli(['group', 'add', state, name])).code, 0);
    for (const name of ['client', ...SERVERS]) {
      assert.equal((await runCli(['group', 'issue', state, name, '-o', file(name)])).code, 0);
      members.set(name, JSON.parse(readFileSync(file(name), 'utf8')) as MemberFile);
    }
    net = new GroupNet(['c', 'm', 'p', ...SERVERS]);
    // The proxy shares an OSCORE context with alice (Sender ID 01) and one with mallory (03); only alice may reach groups.
    writeFileSync(file('proxy-oscore'), JSON.stringify({
      recipients: {
        '01': { name: 'alice', context: { masterSecret: SECRET, senderId: '02' } },
        '03': { name: 'mallory', context: { masterSecret: SECRET, senderId: '02' } },
      },
    }));
    for (const [name, senderId] of [['alice', '01'], ['mallory', '03']] as const) {
      writeFileSync(file(name), JSON.stringify({ oscore: [{ match: `${proxyUri()}/*`, context: { masterSecret: SECRET, senderId, recipientId: '02', name: 'proxy' } }] }));
    }
    for (const s of SERVERS) await net.serve(s, ['--bind', `${net.host(s).v4}:${PORT}`, '--group', file(s), '--leisure', '0.3']);
    const memberAddresses = SERVERS.map((s) => `${net.host(s).v4}:${PORT}`).join(',');
    proxy = net.start('p', ['proxy', '--bind', `${net.host('p').v4}:${PROXY_PORT}`, '--credentials', file('proxy-oscore'), '--group', 'alice', '--group-cache', `${GROUP}=${memberAddresses}`]);
    await started(proxy, /coapsec proxy on/);
  });

  after(async () => {
    await net?.stopChildren();
    net?.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  const label = (s: string): string => `${net.host(s).v4}:${PORT} (${s}, Sender ID ${members.get(s)!.senderId}, group mode)`;
  const viaAlice = (): string[] => ['--group', file('client'), '--via', `${proxyUri()},${file('alice')}`];

  test('the allowed client: one request to the proxy, 3 responses back, each naming its server (Reply-From) and verified end to end', async () => {
    const capture = await Capture.start(join(dir, 'legs.pcap'), net.host('p').ns);
    let bytes: Buffer;
    try {
      const result = await net.run('c', ['post', `coap://${GROUP}/echo`, '--payload', SECRET_PAYLOAD, ...viaAlice(), '--timeout', '2.5']);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(result.stdout.trim().split('\n').sort(), SERVERS.map((s) => `${label(s)}: 2.04 Changed ${SECRET_PAYLOAD}`).sort());
      const whoami = await net.run('c', ['get', `coap://${GROUP}/whoami`, ...viaAlice(), '--timeout', '2.5']);
      assert.equal(whoami.code, 0, whoami.stderr);
      assert.deepEqual(whoami.stdout.trim().split('\n').sort(), SERVERS.map((s) => `${label(s)}: 2.05 Content coap anonymous oscore client`).sort());
    } finally {
      bytes = await capture.stop();
    }

    // Every leg passed the proxy's interface: client → proxy, proxy → group, each server → proxy, proxy → client.
    const legs = capture.legs();
    const c = net.host('c').v4;
    const p = net.host('p').v4;
    assert.ok(legs.includes(`${c} → ${p}`), legs.join('\n'));
    assert.ok(legs.includes(`${p} → 224.0.1.187`), legs.join('\n'));
    for (const s of SERVERS) assert.ok(legs.includes(`${net.host(s).v4} → ${p}`), `${s}: ${legs.join('\n')}`);
    assert.ok(legs.filter((l) => l === `${p} → ${c}`).length >= 6, legs.join('\n'));
    // What the proxy received and sent on every leg: never the plaintext of a request or a response.
    for (const plaintext of [SECRET_PAYLOAD, 'whoami', 'anonymous oscore client', 'echo']) {
      assert.equal(bytes.indexOf(Buffer.from(plaintext)), -1, `"${plaintext}" in the capture at the proxy`);
    }
    // Reply-From travels inside the client–proxy layer (§10.3: integrity and confidentiality on that leg).
    for (const s of SERVERS) {
      const replyFrom = encodeReplyFrom({ scheme: 'coap', host: net.host(s).v4, port: PORT });
      assert.equal(bytes.indexOf(Buffer.from(replyFrom)), -1, `Reply-From of ${s} in clear`);
    }
  });

  test('control: without Group OSCORE the same capture shows the plaintext (the search above can find it)', async () => {
    const capture = await Capture.start(join(dir, 'plain.pcap'), net.host('p').ns);
    let bytes: Buffer;
    try {
      const result = await net.run('c', ['post', `coap://${GROUP}/echo`, '--payload', SECRET_PAYLOAD, '--via', `${proxyUri()},${file('alice')}`, '--timeout', '2.5']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim().split('\n').length, 3, result.stdout);
    } finally {
      bytes = await capture.stop();
    }
    assert.notEqual(bytes.indexOf(Buffer.from(SECRET_PAYLOAD)), -1);
  });

  test('a client the proxy does not allow gets 4.01 from the proxy; nothing reaches the group', async () => {
    const capture = await Capture.start(join(dir, 'refused.pcap'), net.host('p').ns);
    try {
      await refusals();
    } finally {
      await capture.stop();
    }
    assert.deepEqual(capture.legs().filter((l) => l.endsWith('224.0.1.187')), []);
  });

  async function refusals(): Promise<void> {
    const result = await net.run('m', ['get', `coap://${GROUP}/whoami`, '--group', file('client'), '--via', `${proxyUri()},${file('mallory')}`, '--timeout', '2']);
    assert.equal(result.code, 4, result.stderr);
    assert.equal(result.stdout, `${net.host('p').v4}:${PROXY_PORT}: 4.01 Unauthorized not allowed to have requests relayed to coap://${GROUP}\n`);
    const anonymous = await net.run('m', ['get', `coap://${GROUP}/whoami`, '--via', proxyUri(), '--timeout', '2']);
    assert.equal(anonymous.code, 4, anonymous.stderr);
    assert.match(anonymous.stdout, /4\.01 Unauthorized not allowed/);
  }

  test('§7: with every member known (--group-cache), a repeated plain GET is answered from the proxy\'s cache, each response still naming its server', async () => {
    const get = (): Promise<{ code: number | null; stdout: string; stderr: string }> => net.run('c', ['get', `coap://${GROUP}/hello`, '--via', `${proxyUri()},${file('alice')}`, '--timeout', '2']);
    const first = await get();
    assert.equal(first.code, 0, first.stderr);
    const lines = first.stdout.trim().split('\n').sort();
    assert.deepEqual(lines, SERVERS.map((s) => `${net.host(s).v4}:${PORT}: 2.05 Content Hello from coapsec`).sort());
    const capture = await Capture.start(join(dir, 'cached.pcap'), net.host('p').ns);
    let second;
    try {
      second = await get();
    } finally {
      await capture.stop();
    }
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(second.stdout.trim().split('\n').sort(), lines);
    assert.deepEqual(capture.legs().filter((l) => l.endsWith('224.0.1.187')), [], 'the group was not asked again');
  });

  test('Observe of the group through the proxy: each server\'s notifications relayed with Reply-From', async () => {
    const result = await net.run('c', ['get', `coap://${GROUP}/time`, ...viaAlice(), '--observe', '--timeout', '3.5']);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    for (const s of SERVERS) {
      const fromS = lines.filter((l) => l.startsWith(`${label(s)}: 2.05 Content 20`));
      assert.ok(fromS.length >= 2, `notifications from ${s}: ${result.stdout}`);
    }
  });
});

function started(child: ChildProcess, ready: RegExp): Promise<void> {
  let stderr = '';
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`did not start: ${stderr}`)), 10_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (ready.test(stderr)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}): ${stderr}`));
    });
  });
}
