/**
 * The Group Manager's admin inbox (src/group-manager/admin.ts) in one process: a removal asked
 * through the inbox is applied by the running manager exactly as removeNode (rekey, onRekey), bad
 * requests get an error answer, a Group Manager that does not answer has the request withdrawn,
 * and without a running Group Manager the state file is changed under its lock. The command line
 * (`coapsec group-manager remove`) is in group-manager-cli.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fromHex } from '../src/cose/cbor.js';
import { PidLock } from '../src/credentials/pid-lock.js';
import { GroupManager } from '../src/group-oscore/manager.js';
import { AdminInbox, adminInboxOf, GroupManagerAdminError, requestAdmin } from '../src/group-manager/admin.js';
import { openGroupManager, type GroupManagerConfig } from '../src/group-manager/config.js';
import { OnlineGroupManager, type OnlineGroupManagerState } from '../src/group-manager/online-manager.js';

const work = mkdtempSync(join(tmpdir(), 'coapsec-gm-admin-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** A config whose state file holds group "lights" with the offline members lamp and switch. */
function setUp(name: string): GroupManagerConfig {
  const offline = GroupManager.create({ name: 'lights' });
  offline.addMember('lamp');
  offline.addMember('switch');
  const lightsPath = join(work, `${name}-lights.json`);
  writeFileSync(lightsPath, JSON.stringify(offline.toJSON()));
  return { audience: 'gm', tokenKey: { kid: fromHex('09'), key: new Uint8Array(16) }, statePath: join(work, `${name}-state.json`), importPaths: [lightsPath] };
}

test('the running Group Manager answers a removal from its inbox: removeNode, rekey, observers told', async () => {
  const config = setUp('running');
  const lock = PidLock.acquire(`${config.statePath}.lock`);
  const manager = openGroupManager(config);
  const rekeyed: string[] = [];
  manager.onRekey = (group) => rekeyed.push(group);
  const inbox = AdminInbox.open(config.statePath, manager);
  try {
    assert.equal(statSync(adminInboxOf(config.statePath)).mode & 0o777, 0o700, 'only the Group Manager\'s user writes the inbox');
    const result = await requestAdmin(config, { op: 'remove', group: 'lights', node: 'switch' });
    assert.deepEqual(result, { ok: true, group: 'lights', node: 'switch', active: true, keyGeneration: 1, gid: manager.gid('lights'), running: true });
    assert.deepEqual(manager.nodes('lights'), ['lamp']);
    assert.deepEqual(rekeyed, ['lights']);
    const persisted = JSON.parse(readFileSync(config.statePath, 'utf8')) as OnlineGroupManagerState;
    assert.equal(persisted.groups[0]!.manager.keyGeneration, 1, 'the change is in the state file');

    const unknown = await requestAdmin(config, { op: 'remove', group: 'lights', node: 'switch' });
    assert.deepEqual(unknown, { ok: false, error: 'group lights has no node switch (its members: lamp)', running: true });
    assert.deepEqual(rekeyed, ['lights'], 'no rekey for a refused request');

    // The group's status (key-groupcomm-oscore §8.2) the same way: observers of /active are told.
    const statusChanges: string[] = [];
    manager.onStatusChange = (group) => statusChanges.push(group);
    const inactive = await requestAdmin(config, { op: 'status', group: 'lights', active: false });
    assert.deepEqual(inactive, { ok: true, group: 'lights', active: false, keyGeneration: 1, gid: manager.gid('lights'), running: true });
    assert.equal(manager.isActive('lights'), false);
    assert.deepEqual(statusChanges, ['lights']);
    assert.equal((JSON.parse(readFileSync(config.statePath, 'utf8')) as OnlineGroupManagerState).groups[0]!.active, false, 'persisted');
    assert.equal((await requestAdmin(config, { op: 'status', group: 'lights', active: true })).ok, true);
    assert.equal(manager.isActive('lights'), true);
    writeFileSync(join(adminInboxOf(config.statePath), 'half.request.json'), '{"op": "status", "group": "lights"}');
    inbox.answerWaiting();
    assert.deepEqual(JSON.parse(readFileSync(join(adminInboxOf(config.statePath), 'half.result.json'), 'utf8')), { ok: false, error: 'a status request needs "active": true or false' });

    // A malformed request dropped into the inbox gets an answer, not a crash.
    writeFileSync(join(adminInboxOf(config.statePath), 'junk.request.json'), '{"op": "format-disk"}');
    inbox.answerWaiting();
    assert.deepEqual(JSON.parse(readFileSync(join(adminInboxOf(config.statePath), 'junk.result.json'), 'utf8')), { ok: false, error: 'the request is no {"op": "remove" | "status", ...}' });
  } finally {
    inbox.close();
    lock.release();
  }
});

test('a Group Manager that does not answer: the request is withdrawn and the command fails', async () => {
  const config = setUp('silent');
  const lock = PidLock.acquire(`${config.statePath}.lock`);
  const manager = openGroupManager(config);
  const inbox = AdminInbox.open(config.statePath, manager);
  inbox.close(); // the inbox exists, nobody reads it
  try {
    await assert.rejects(requestAdmin(config, { op: 'remove', group: 'lights', node: 'lamp' }, { timeoutMs: 100 }), (e: unknown) => e instanceof GroupManagerAdminError && /did not answer within 100 ms; the request was withdrawn/.test(e.message));
    assert.deepEqual(readdirSync(adminInboxOf(config.statePath)), [], 'nothing left behind');
    assert.deepEqual(manager.nodes('lights'), ['lamp', 'switch']);
  } finally {
    lock.release();
  }
});

test('without a running Group Manager the state file is changed under its lock', async () => {
  const config = setUp('stopped');
  openGroupManager(config); // the first start wrote the state file; the process is gone
  const result = await requestAdmin(config, { op: 'remove', group: 'lights', node: 'lamp' });
  assert.equal(result.ok && result.running, false);
  assert.ok(result.ok);
  const reopened = new OnlineGroupManager(JSON.parse(readFileSync(config.statePath, 'utf8')) as OnlineGroupManagerState);
  assert.deepEqual(reopened.nodes('lights'), ['switch']);
  assert.equal(reopened.keyGeneration('lights'), 1);
  assert.equal(existsSync(`${config.statePath}.lock`), false, 'the lock is released');
});
