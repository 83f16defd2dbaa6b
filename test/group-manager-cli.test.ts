/**
 * The Group Manager through the command line: the docs/group-manager.md walkthrough run as written
 * (its ports replaced by free ones) — `coapsec group create` (the offline tool's state), `coapsec
 * as`, `coapsec group-manager` taking that state over, and two `coapsec group join` — then the
 * member files it wrote are checked as the Group OSCORE tools read them; last `coapsec
 * group-manager remove` takes bob out of the running Group Manager, and bob's member file no
 * longer reads the group's next message. The Group Manager's refusals (4.03, 4.00) are in
 * group-manager.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createMessage, MessageType } from '../src/coap/message.js';
import { Method } from '../src/coap/codes.js';
import type { OnlineGroupManagerState } from '../src/group-manager/online-manager.js';
import type { GroupSecurityContext } from '../src/group-oscore/context.js';
import { checkMemberFile } from '../src/group-oscore/member-file.js';
import { contextFromMemberFile, type GroupMemberFile } from '../src/group-oscore/manager.js';
import { protectGroupRequest, unprotectGroupRequest } from '../src/group-oscore/protect.js';
import { ROOT, assertUsageError, coapsec, freeUdpPort, killChildren, runWalkthrough } from './support/cli-harness.js';

const work = mkdtempSync(join(tmpdir(), 'coapsec-gm-walkthrough-'));

after(() => {
  killChildren();
  rmSync(work, { recursive: true, force: true });
});


// The walkthrough's own files, and the clients' contexts with the AS from docs/ace.md.
const FILES = { 'gm-as.json': 'gm-as.json', 'gm-config.json': 'gm-config.json', 'gm-walkthrough.sh': 'walkthrough.sh', 'ace-as-credentials.json': 'as-credentials.json', 'ace-alice.json': 'alice.json', 'ace-bob.json': 'bob.json' };

test('docs/group-manager.md: its shell and config blocks are the examples/ files, and the walkthrough runs', async () => {
  const doc = readFileSync(join(ROOT, 'docs', 'group-manager.md'), 'utf8');
  for (const file of ['gm-as.json', 'gm-config.json', 'gm-walkthrough.sh']) {
    const text = readFileSync(join(ROOT, 'examples', file), 'utf8').trimEnd();
    assert.ok(doc.includes(`<!-- example: examples/${file} -->\n\`\`\`${file.endsWith('.sh') ? 'sh' : 'json'}\n${text}\n\`\`\``), `docs/group-manager.md shows examples/${file} verbatim`);
  }
  const [asPort, gmPort] = [await freeUdpPort(), await freeUdpPort()];
  const ported = (text: string): string => text.replaceAll('127.0.0.1:5688', `127.0.0.1:${asPort}`).replaceAll('127.0.0.1:5689', `127.0.0.1:${gmPort}`);
  for (const [from, to] of Object.entries(FILES)) writeFileSync(join(work, to), ported(readFileSync(join(ROOT, 'examples', from), 'utf8')));
  const result = await runWalkthrough(work);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /joined lights as m1: Sender ID [0-9a-f]+, key generation 0; member file written to alice-lights\.json\njoined lights as m2: Sender ID [0-9a-f]+, key generation 0; member file written to bob-lights\.json/);
  assert.match(result.stderr, /group-manager: ace [0-9a-f]+ joined lights as m2 \(responder\)/, 'group-manager -v logs the joins');

  const offline = JSON.parse(readFileSync(join(work, 'lights.json'), 'utf8')) as { gid: string; masterSecret: string };
  const files = ['alice', 'bob'].map((name) => checkMemberFile(JSON.parse(readFileSync(join(work, `${name}-lights.json`), 'utf8')), `${name}-lights.json`, (path, message) => assert.fail(`${path} ${message}`)));
  for (const file of files) {
    assert.equal(file.gid, offline.gid, 'the group the offline tool created');
    assert.equal(file.masterSecret, offline.masterSecret);
    assert.ok(contextFromMemberFile(file).senderId !== undefined);
  }
  assert.equal(files[1]!.members.length, 1, "bob's file has alice's credential");
  assert.ok(existsSync(join(work, 'gm-state.json')), 'the Group Manager persisted its state');

  // The walkthrough's last step: the administrator removed bob from the running Group Manager.
  assert.match(result.stdout, /removed m2 from lights: key generation 1, Gid [0-9a-f]+ \(the running Group Manager rekeyed it\)\n$/);
  assert.match(result.stderr, /group-manager: lights: m2 removed by the Group Manager; new Gid [0-9a-f]+, key generation 1/);
  const state = JSON.parse(readFileSync(join(work, 'gm-state.json'), 'utf8')) as OnlineGroupManagerState;
  const lights = state.groups[0]!;
  assert.deepEqual(Object.keys(lights.nodes), ['m1'], 'bob is no member any more');
  assert.equal(lights.manager.keyGeneration, 1);
  assert.notEqual(lights.manager.gid, offline.gid);
  // Alice's next message, under the keying material the Group Manager now hands out.
  const [aliceFile, bobFile] = files as [GroupMemberFile, GroupMemberFile];
  const rekeyed = (file: GroupMemberFile): GroupSecurityContext => contextFromMemberFile({ ...file, gid: lights.manager.gid, keyGeneration: 1, masterSecret: lights.manager.masterSecret, masterSalt: lights.manager.masterSalt });
  assert.equal(reads(contextFromMemberFile(aliceFile), contextFromMemberFile(bobFile)), true, 'before: bob read alice');
  assert.equal(reads(rekeyed(aliceFile), rekeyed(bobFile)), true, 'the new material reads the next message');
  assert.equal(reads(rekeyed(aliceFile), contextFromMemberFile(bobFile)), false, "bob's member file does not");
});

/** Whether `reader` can unprotect a group-mode request `sender` protected (its context used whatever the Gid says). */
function reads(sender: GroupSecurityContext, reader: GroupSecurityContext): boolean {
  const request = createMessage({ type: MessageType.NON, code: Method.GET, messageId: 1, token: Uint8Array.of(1) });
  const { message } = protectGroupRequest(request, sender, { mode: 'group' });
  return unprotectGroupRequest(message, () => reader).ok;
}

test('group-manager and group join usage errors', async () => {
  assertUsageError(await coapsec(['group-manager']), /--config/);
  writeFileSync(join(work, 'bad-gm.json'), JSON.stringify({ audience: 'gm', tokenKey: { kid: '01', key: '00' }, state: 's.json' }));
  assertUsageError(await coapsec(['group-manager', '--config', join(work, 'bad-gm.json')]), /"tokenKey\.key" must be 16 bytes/);
  assertUsageError(await coapsec(['group', 'join', 'lights', '--ace-as', 'coap://127.0.0.1:9/token']), /--gm/);
  assertUsageError(await coapsec(['group-manager', 'remove', '--config', join(work, 'gm-config.json'), '--group', 'lights']), /--member NODE/);
  // No Group Manager runs now: the command changes the state file itself, and names what exists.
  assertUsageError(await coapsec(['group-manager', 'remove', '--config', join(work, 'gm-config.json'), '--group', 'lights', '--member', 'm9']), /group lights has no node m9 \(its members: m1\)/);
  assertUsageError(await coapsec(['group-manager', 'remove', '--config', join(work, 'gm-config.json'), '--group', 'doors', '--member', 'm1']), /groups: lights/);
  const direct = await coapsec(['group-manager', 'remove', '--config', join(work, 'gm-config.json'), '--group', 'lights', '--member', 'm1']);
  assert.equal(direct.code, 0, direct.stderr);
  assert.match(direct.stdout, /^removed m1 from lights: key generation 2, Gid [0-9a-f]+ \(no Group Manager runs: its state file was changed\)\n$/);
  // group-manager status: one of --active, --inactive; the state file keeps it.
  assertUsageError(await coapsec(['group-manager', 'status', '--config', join(work, 'gm-config.json'), '--group', 'lights']), /one of --active, --inactive/);
  assertUsageError(await coapsec(['group-manager', 'status', '--config', join(work, 'gm-config.json'), '--group', 'doors', '--inactive']), /no group doors \(groups: lights\)/);
  const inactive = await coapsec(['group-manager', 'status', '--config', join(work, 'gm-config.json'), '--group', 'lights', '--inactive']);
  assert.equal(inactive.code, 0, inactive.stderr);
  assert.match(inactive.stdout, /^lights is inactive \(no Group Manager runs: its state file was changed\)\n$/);
  assert.match(readFileSync(join(work, 'gm-state.json'), 'utf8'), /"active": ?false/);
});
