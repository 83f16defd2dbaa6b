/**
 * coapsec group (the offline Group Manager tool), group entries in the credentials file, and the
 * group client's refusals that need no network: create, add, issue, show, remove + rekey, bad input.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCredentials } from '../src/credentials/credentials-file.js';
import { CredentialsError } from '../src/credentials/errors.js';
import { GroupClient } from '../src/group/group-client.js';
import { UdpTransport } from '../src/transport/udp.js';
import { runCli } from './support/group-cli.js';

describe('coapsec group: the offline Group Manager', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-group-cli-'));
  const state = join(dir, 'lights.json');
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('create, add, issue, show, remove (rekeys), rekey', async () => {
    const created = await runCli(['group', 'create', state, '--name', 'lights', '--address', '[ff05::fd]:5683', '--signature', 'es256']);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^group lights created: Gid [0-9a-f]{8}, key generation 0\n$/);
    assert.equal(statSync(state).mode & 0o077, 0, 'the state file holds secrets: owner only');
    for (const [name, id] of [['client', '00'], ['s1', '01'], ['s2', '02']] as const) {
      const added = await runCli(['group', 'add', state, name]);
      assert.equal(added.stdout, `lights: ${name} added with Sender ID ${id}\n`);
    }
    const issued = await runCli(['group', 'issue', state, 's1']);
    const member = JSON.parse(issued.stdout) as { senderId: string; address: string; algorithms: { signature: number }; members: unknown[]; privateKey: string };
    assert.equal(member.senderId, '01');
    assert.equal(member.address, '[ff05::fd]:5683');
    assert.equal(member.algorithms.signature, -7);
    assert.equal(member.members.length, 2);
    const before = JSON.parse(readFileSync(state, 'utf8')) as { gid: string };
    const removed = await runCli(['group', 'remove', state, 's2']);
    assert.equal(removed.code, 0, removed.stderr);
    const afterRemove = JSON.parse(readFileSync(state, 'utf8')) as { gid: string; keyGeneration: number };
    assert.notEqual(afterRemove.gid, before.gid);
    assert.equal(afterRemove.keyGeneration, 1);
    assert.match(removed.stdout, new RegExp(`s2 removed; rekeyed to Gid ${afterRemove.gid}, key generation 1`));
    const rekeyed = await runCli(['group', 'rekey', state]);
    assert.match(rekeyed.stdout, /key generation 2/);
    const shown = await runCli(['group', 'show', state]);
    assert.match(shown.stdout, /^group lights at \[ff05::fd\]:5683: Gid [0-9a-f]{8}, key generation 2\n  client: Sender ID 00\n  s1: Sender ID 01\n$/);
  });

  test('bad input is a usage error (exit 2), never a stack trace', async () => {
    for (const args of [
      ['group', 'add', state, 's1'], // already a member
      ['group', 'issue', state, 'nobody'],
      ['group', 'frobnicate', state],
      ['group', 'create', join(dir, 'x.json')], // no --name
      ['group', 'create', join(dir, 'x.json'), '--name', 'x', '--address', '10.0.0.1:5683'], // not multicast
      ['group', 'create', join(dir, 'x.json'), '--name', 'x', '--signature', 'rsa'],
      ['group', 'show', join(dir, 'missing.json')],
    ]) {
      const result = await runCli(args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /^coapsec: .+\n$/);
      assert.doesNotMatch(result.stderr, /\n\s+at /);
    }
  });

  test('credentials file: "groups" holds member files, checked field by field', async () => {
    const issued = JSON.parse((await runCli(['group', 'issue', state, 'client'])).stdout) as Record<string, unknown>;
    const credentials = parseCredentials(JSON.stringify({ groups: [issued] }), join(dir, 'creds.json'));
    assert.equal(credentials.groups.length, 1);
    assert.equal(credentials.groups[0]!.group, 'lights');
    assert.equal(credentials.groups[0]!.senderId, '00');
    assert.throws(
      () => parseCredentials(JSON.stringify({ groups: [{ ...issued, masterSecret: 'not hex' }] }), join(dir, 'creds.json')),
      (e: unknown) => e instanceof CredentialsError && /groups\[0\]\.masterSecret: must be a string of hex digits/.test(e.message) && !e.message.includes('not hex'),
    );
    assert.throws(() => parseCredentials(JSON.stringify({ groups: [{ ...issued, colour: 'red' }] }), 'c.json'), /groups\[0\]\.colour: unknown field/);
  });

  test('get to a group name needs the group: a clear usage error without one', async () => {
    const creds = join(dir, 'creds.json');
    writeFileSync(creds, JSON.stringify({ groups: [] }));
    const named = await runCli(['get', 'coap://lights/hello', '--credentials', creds, '--group', join(dir, 'missing.json')]);
    assert.equal(named.code, 2);
    assert.equal(named.stderr, 'coapsec: use either --group or --credentials, not both\n');
    const missing = await runCli(['get', 'coap://lights/hello', '--group', join(dir, 'missing.json')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^coapsec: .*missing\.json: cannot read the group member file.*\n$/);
  });
});

describe('GroupClient', () => {
  test('refuses a Confirmable request to a group (RFC 7252 §8.1) and non-UDP schemes', async () => {
    const client = new GroupClient({ transport: await UdpTransport.bind({ host: '127.0.0.1', port: 0 }) });
    try {
      assert.throws(() => client.request({ uri: 'coap://224.0.1.187:5683/x', confirmable: true as unknown as false }), /must be Non-confirmable/);
      assert.throws(() => client.request({ uri: 'coap+tcp://224.0.1.187/x' }), /coap:\/\/ \(UDP\)/);
      assert.equal(client.pendingRequests, 0);
    } finally {
      await client.close();
    }
  });
});
