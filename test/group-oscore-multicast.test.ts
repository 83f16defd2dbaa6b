/**
 * Group OSCORE over IP multicast, end to end between processes in network namespaces: the offline
 * Group Manager (`coapsec group`) issues member files; three `coapsec serve --group` servers and a
 * `coapsec get --group` client. Group mode and pairwise mode; a replayed group request refused by
 * each server; a response one member forges in another's name refused by the client.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { GroupNet } from './support/group-netns.js';
import { runCli } from './support/group-cli.js';

const PORT = 5798;
const SERVERS = ['s1', 's2', 's3'];
const FIXTURE = new URL('./support/group-fixture.js', import.meta.url).pathname;

interface MemberFile {
  senderId: string;
  credential: string;
}

describe('Group OSCORE over IP multicast: 1 client, 3 servers, and a forging member', () => {
  let net: GroupNet;
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-gm-'));
  const state = join(dir, 'lights.json');
  const file = (name: string): string => join(dir, `${name}.json`);
  const members = new Map<string, MemberFile>();
  const servers = new Map<string, ChildProcess>();
  const serveArgs = (s: string): string[] => ['--bind', `${net.host(s).v4}:${PORT}`, '--group', file(s), '--leisure', '0.3'];

  before(async () => {
    assert.equal((await runCli(['group', 'create', state, '--name', 'lights', '--address', `224.0.1.187:${PORT}`])).code, 0);
    for (const name of ['client', ...SERVERS, 'forger']) {
      assert.equal((await runCli(['group', 'add', state, name])).code, 0);
    }
    for (const name of ['client', ...SERVERS, 'forger']) {
      assert.equal((await runCli(['group', 'issue', state, name, '-o', file(name)])).code, 0);
      members.set(name, JSON.parse(readFileSync(file(name), 'utf8')) as MemberFile);
    }
    net = new GroupNet(['c', ...SERVERS, 'f']);
    for (const s of SERVERS) servers.set(s, await net.serve(s, serveArgs(s)));
  });

  after(async () => {
    await net?.stopChildren();
    net?.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  const label = (s: string, mode: string): string => `${net.host(s).v4}:${PORT} (${s}, Sender ID ${members.get(s)!.senderId}, ${mode} mode)`;

  test('group mode: each server answers, verified by its countersignature and labelled with its member', async () => {
    const result = await net.run('c', ['get', 'coap://lights/whoami', '--group', file('client'), '--timeout', '2']);
    assert.equal(result.code, 0, result.stderr);
    // /whoami shows how the server authenticated the request: the client's name from its CCS.
    assert.deepEqual(result.stdout.trim().split('\n').sort(), SERVERS.map((s) => `${label(s, 'group')}: 2.05 Content coap anonymous oscore client`).sort());
  });

  test('pairwise mode toward each member: only that member can read the request, and answers', async () => {
    for (const s of SERVERS) {
      const result = await net.run('c', ['get', `coap://224.0.1.187:${PORT}/whoami`, '--group', file('client'), '--pairwise', members.get(s)!.senderId, '--timeout', '1.5']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `${label(s, 'pairwise')}: 2.05 Content coap anonymous oscore client\n`);
    }
  });

  test('a replayed group request is refused by each server, to the group and to each server alone', async () => {
    const servers = SERVERS.map((s) => net.host(s).v4);
    const result = await net.run('c', ['replay', file('client'), '224.0.1.187', String(PORT), ...servers], FIXTURE);
    assert.equal(result.code, 0, result.stderr);
    const { original, toGroup, toEach } = JSON.parse(result.stdout) as Record<string, Record<string, string[]>>;
    assert.deepEqual(Object.keys(original!).sort(), servers.sort());
    for (const s of servers) assert.deepEqual(original![s], ['protected 2.05']);
    // To the group: nothing (errors to group requests are suppressed, §3.1.2).
    assert.deepEqual(toGroup, {});
    // To each server: its refusal, unprotected (RFC 8613 §8.2).
    for (const s of servers) assert.deepEqual(toEach![s], ['4.01 Replay detected']);
  });

  test('source authentication: a response one member forges in another member\'s name is refused', async () => {
    const victim = members.get('s2')!;
    const forger = await net.serve('f', ['forge', file('forger'), victim.senderId, victim.credential, net.host('f').v4, String(PORT), '224.0.1.187'], FIXTURE);
    try {
      const result = await net.run('c', ['get', 'coap://lights/whoami', '--group', file('client'), '--timeout', '2']);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(result.stdout.trim().split('\n').sort(), SERVERS.map((s) => `${label(s, 'group')}: 2.05 Content coap anonymous oscore client`).sort());
      assert.match(result.stderr, new RegExp(`refused a response from ${net.host('f').v4.replaceAll('.', '\\.')}:${PORT}: Decryption failed`));
    } finally {
      forger.kill('SIGTERM');
    }
  });

  test('a restarted server lost its replay windows: it challenges the client with Echo (§9), the client repeats to it alone', async () => {
    const old = servers.get('s1')!;
    await new Promise<void>((resolve) => {
      old.once('exit', () => resolve());
      old.kill('SIGTERM');
    });
    servers.set('s1', await net.serve('s1', serveArgs('s1')));
    const result = await net.run('c', ['get', 'coap://lights/whoami', '--group', file('client'), '--timeout', '2']);
    assert.equal(result.code, 0, result.stderr);
    // s1's 2.05 answers the repeated request, sent to s1 alone in the pairwise mode with the Echo value.
    assert.deepEqual(
      result.stdout.trim().split('\n').sort(),
      [`${label('s1', 'pairwise')}: 2.05 Content coap anonymous oscore client`, ...['s2', 's3'].map((s) => `${label(s, 'group')}: 2.05 Content coap anonymous oscore client`)].sort(),
    );
  });
});
