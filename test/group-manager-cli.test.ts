/**
 * The Group Manager through the command line: the docs/group-manager.md walkthrough run as written
 * (its ports replaced by free ones) — `coapsec group create` (the offline tool's state), `coapsec
 * as`, `coapsec group-manager` taking that state over, and two `coapsec group join` — then the
 * member files it wrote are checked as the Group OSCORE tools read them. The Group Manager's
 * refusals (4.03, 4.00) are in group-manager.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkMemberFile } from '../src/group-oscore/member-file.js';
import { contextFromMemberFile } from '../src/group-oscore/manager.js';
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
});

test('group-manager and group join usage errors', async () => {
  assertUsageError(await coapsec(['group-manager']), /--config/);
  writeFileSync(join(work, 'bad-gm.json'), JSON.stringify({ audience: 'gm', tokenKey: { kid: '01', key: '00' }, state: 's.json' }));
  assertUsageError(await coapsec(['group-manager', '--config', join(work, 'bad-gm.json')]), /"tokenKey\.key" must be 16 bytes/);
  assertUsageError(await coapsec(['group', 'join', 'lights', '--ace-as', 'coap://127.0.0.1:9/token']), /--gm/);
});
