/**
 * The Group Manager through the command line: `coapsec group create` (the offline tool's state),
 * `coapsec as` and `coapsec group-manager` (taking that state over), then `coapsec group join`
 * writes a member file the Group OSCORE tools accept; a client the AS grants no role in the group
 * gets no token (exit 6). The Group Manager's own 4.03s are in group-manager.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { checkMemberFile } from '../src/group-oscore/member-file.js';
import { contextFromMemberFile } from '../src/group-oscore/manager.js';
import { coapsec, killChildren, startDaemon, type Daemon } from './support/cli-harness.js';

const GM_KEY = 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf';
const dir = mkdtempSync(join(tmpdir(), 'coapsec-gm-cli-'));
const env = process.env;
let as: Daemon;
let gm: Daemon;
const secrets = { alice: '0a'.repeat(16), eve: '0e'.repeat(16) };
const ids = { alice: 'a1', eve: 'e1' };

before(async () => {
  process.env['COAPSEC_STATE_DIR'] = join(dir, 'state');
  assert.equal((await coapsec(['group', 'create', join(dir, 'lights.json'), '--name', 'lights'])).code, 0);
  assert.equal((await coapsec(['group', 'create', join(dir, 'doors.json'), '--name', 'doors'])).code, 0);
  writeFileSync(
    join(dir, 'as.json'),
    JSON.stringify({
      issuer: 'as',
      audiences: { gm: { kid: '09', key: GM_KEY, scopeFormat: 'aif-oscore-group', scopes: ['lights:requester', 'lights:responder', 'doors:requester'] } },
      clients: { alice: { grants: { gm: ['lights:requester', 'lights:responder'] } }, eve: { grants: { gm: ['doors:requester'] } } },
    }),
  );
  const recipients = Object.fromEntries(Object.entries(ids).map(([name, id]) => [id, { name, context: { masterSecret: secrets[name as keyof typeof secrets], senderId: '' } }]));
  writeFileSync(join(dir, 'as-credentials.json'), JSON.stringify({ recipients }));
  as = await startDaemon(['as', '--config', join(dir, 'as.json'), '--credentials', join(dir, 'as-credentials.json'), '--bind', '127.0.0.1:0'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  for (const name of ['alice', 'eve'] as const) {
    writeFileSync(join(dir, `${name}.json`), JSON.stringify({ oscore: [{ match: `coap://127.0.0.1:${as.port}/*`, context: { masterSecret: secrets[name], senderId: ids[name], recipientId: '' } }] }));
  }
  writeFileSync(join(dir, 'gm.json'), JSON.stringify({ audience: 'gm', as: `coap://127.0.0.1:${as.port}/token`, issuer: 'as', tokenKey: { kid: '09', key: GM_KEY }, state: 'gm-state.json', import: ['lights.json', 'doors.json'] }));
  gm = await startDaemon(['group-manager', '--config', join(dir, 'gm.json'), '--bind', '127.0.0.1:0', '-v'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
});

after(async () => {
  await gm?.stop();
  await as?.stop();
  killChildren();
  process.env = env;
  rmSync(dir, { recursive: true, force: true });
});

const joinArgs = (name: string, group: string): string[] => ['group', 'join', group, '--gm', `coap://127.0.0.1:${gm.port}`, '--ace-as', `coap://127.0.0.1:${as.port}/token`, '--credentials', join(dir, `${name}.json`), '-o', join(dir, `${name}-${group}.json`)];

test('group join: a token from the AS, the join, and a member file for the Group OSCORE tools', async () => {
  const r = await coapsec(joinArgs('alice', 'lights'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^joined lights as m1: Sender ID [0-9a-f]+, key generation 0; member file written to /);
  const file = checkMemberFile(JSON.parse(readFileSync(join(dir, 'alice-lights.json'), 'utf8')), 'alice-lights.json', (path, message) => assert.fail(`${path} ${message}`));
  const offline = JSON.parse(readFileSync(join(dir, 'lights.json'), 'utf8')) as { gid: string; masterSecret: string };
  assert.equal(file.gid, offline.gid, 'the group the offline tool created');
  assert.equal(file.masterSecret, offline.masterSecret);
  assert.ok(contextFromMemberFile(file).senderId !== undefined);
  assert.ok(existsSync(join(dir, 'gm-state.json')), 'the Group Manager persisted its state');
  assert.match(readFileSync(join(dir, 'gm-state.json'), 'utf8'), /"m1"/);
});

test('group join for a group the AS grants no role in: exit 6 and the AS\'s invalid_scope', async () => {
  const r = await coapsec(joinArgs('eve', 'lights'));
  assert.equal(r.code, 6, r.stderr);
  assert.match(r.stderr, /the AS refused the token request: 4\.00 Bad Request: invalid_scope/);
  assert.ok(!existsSync(join(dir, 'eve-lights.json')));
});
