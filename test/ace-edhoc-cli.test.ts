/**
 * The EDHOC and OSCORE profile through the command line: docs/ace.md's second walkthrough, run as
 * written (its ports replaced by free ones) — `coapsec keygen` for the RS and two clients,
 * `coapsec as`, `coapsec serve --ace --credentials` with an EDHOC identity, and `coapsec get|put
 * --ace-as` with clients whose credentials hold theirs: alice reads and writes, bob's PUT is
 * refused (scope too narrow), and a client without a token gets the hints.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, freeUdpPort, runWalkthrough } from './support/cli-harness.js';


/** The example files docs/ace.md shows, by marker. */
function shownExamples(): Map<string, string> {
  const doc = readFileSync(join(ROOT, 'docs', 'ace.md'), 'utf8').split('\n');
  const shown = new Map<string, string>();
  for (let i = 0; i < doc.length; i++) {
    const marker = /^<!-- example: (examples\/[\w.-]+) -->$/.exec(doc[i]!.trim());
    if (!marker) continue;
    const end = doc.indexOf('```', i + 2);
    shown.set(marker[1]!, doc.slice(i + 2, end).join('\n'));
  }
  return shown;
}

test('docs/ace.md, EDHOC and OSCORE profile: the blocks are the examples/ files, and the walkthrough runs', async () => {
  const shown = shownExamples();
  // examples/ file → the name the walkthrough uses.
  const files: Record<string, string> = {
    'ace-edhoc-as.json': 'as.json',
    'ace-as-credentials.json': 'as-credentials.json',
    'ace-edhoc-alice.json': 'alice.json',
    'ace-edhoc-bob.json': 'bob.json',
    'ace-rs.json': 'rs.json',
    'ace-edhoc-walkthrough.sh': 'walkthrough.sh',
  };
  for (const file of Object.keys(files)) assert.equal(shown.get(`examples/${file}`), readFileSync(join(ROOT, 'examples', file), 'utf8').trimEnd(), `docs/ace.md shows examples/${file} verbatim`);

  const work = mkdtempSync(join(tmpdir(), 'coapsec-ace-edhoc-walkthrough-'));
  try {
    const [asPort, rsPort] = [await freeUdpPort(), await freeUdpPort()];
    const ported = (text: string): string => text.replaceAll('127.0.0.1:5688', `127.0.0.1:${asPort}`).replaceAll('127.0.0.1:5683', `127.0.0.1:${rsPort}`);
    for (const [file, name] of Object.entries(files)) writeFileSync(join(work, name), ported(readFileSync(join(ROOT, 'examples', file), 'utf8')));
    // Without a token first (after the walkthrough's own commands): the hints.
    writeFileSync(join(work, 'walkthrough.sh'), `${readFileSync(join(work, 'walkthrough.sh'), 'utf8')}\ncoapsec get coap://127.0.0.1:${rsPort}/hello --pretty\n`);
    const result = await runWalkthrough(work, '. ./walkthrough.sh; kill %1 %2; wait; exit 0');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /Hello from coapsec/, 'alice reads');
    assert.match(result.stderr, /ace: token from .* for sensor .*series/, 'alice -v: the token of a series');
    assert.match(result.stderr, /4\.05 Method Not Allowed/, 'bob may not write');
    assert.match(result.stdout, /Hello from coapsec[\s\S]*9\{\s*1: [\s\S]*5: "sensor"/, 'bob reads the level alice set; then the unprotected GET gets the hints');
    assert.doesNotMatch(result.stderr, /Error|at .*\.js:\d+/, 'no stack trace');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
