/**
 * The demo page (web/) as a user opens it: served by `coapsec proxy --forward --ws 0 --web DIR`
 * itself, so its origin is the proxy's own, talking OSCORE through that proxy to `coapsec serve`
 * over UDP. The page reads the sensor, observes 10 notifications and sets the valve (after an
 * Echo); each row shows the hex the proxy relayed, which must not hold the plaintext the page
 * decrypted. A screenshot of the page after the run is saved under test-artifacts/ (gitignored).
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { launchChromium, type HeadlessChromium } from './support/chromium.js';
import { ROOT, coapsec, killChildren, startDaemon, type Daemon } from './support/cli-harness.js';

const { bundleBrowser } = (await import(pathToFileURL(join(ROOT, 'scripts', 'build-browser.mjs')).href)) as typeof import('../scripts/build-browser.mjs');

interface DemoResult {
  actions: Array<{ action: string; status: string; text: string }>;
  error?: string;
  done: boolean;
}

let work: string;
let server: Daemon;
let proxy: Daemon;
let browser: HeadlessChromium;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'coapsec-browser-demo-'));
  process.env.COAPSEC_STATE_DIR = join(work, 'state');
  const web = join(work, 'web');
  mkdirSync(web);
  for (const name of readdirSync(join(ROOT, 'web'))) copyFileSync(join(ROOT, 'web', name), join(web, name));
  writeFileSync(join(web, 'coapsec.js'), (await bundleBrowser()).text);
  const made = await coapsec(['credentials', 'new', '--peer', 'page', '--out-dir', join(work, 'creds')]);
  assert.equal(made.code, 0, made.stderr);
  server = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--credentials', join(work, 'creds', 'server.json')], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  proxy = await startDaemon(['proxy', '--forward', '--bind', '127.0.0.1:0', '--ws', '0', '--web', web, '--allow-destination', '127.0.0.1'], /proxy on coap:\/\/127\.0\.0\.1:(\d+)/);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await proxy?.stop();
  await server?.stop();
  killChildren();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the demo page served by the proxy: sensor, 10 notifications, valve, all OSCORE; the relayed hex holds no plaintext; screenshot saved', { timeout: 120_000 }, async () => {
  const page = (await proxy.waitFor(/web page on (http:\/\/127\.0\.0\.1:\d+)\//))[1]!;
  const client = JSON.parse(readFileSync(join(work, 'creds', 'client.json'), 'utf8')) as { oscore: Array<{ context: Record<string, string> }> };
  const fragment = new URLSearchParams({ context: JSON.stringify(client.oscore[0]!.context), device: `coap://127.0.0.1:${server.port}`, run: '1' });
  await browser.page.goto(`${page}/#${fragment}`);
  const handle = await browser.page.waitForFunction(() => (globalThis as { coapsecDemo?: DemoResult }).coapsecDemo?.done && (globalThis as { coapsecDemo?: DemoResult }).coapsecDemo, undefined, { timeout: 90_000 });
  const result = (await handle.jsonValue()) as DemoResult;
  assert.equal(result.error, undefined, `${result.error}; page errors: ${browser.errors.join(' | ')}`);
  assert.deepEqual(result.actions[0], { action: 'read', status: '2.05 Content', text: 'Hello from coapsec' });
  const notes = result.actions.filter((a) => a.action === 'observe');
  assert.equal(notes.length, 11);
  for (const n of notes) assert.match(n.text, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.deepEqual(result.actions.at(-1), { action: 'valve', status: '2.04 Changed', text: '7' });

  // Each table row: the relayed hex (the proxy's view) holds none of what the page decrypted.
  const rows = await browser.page.$$eval('#log tr', (trs) => trs.map((tr) => Array.from(tr.children, (td) => (td as { textContent: string | null }).textContent ?? '')));
  assert.ok(rows.length >= 14, `${rows.length} rows`);
  const relayed = Buffer.from(rows.map((r) => r[1]!.replace(/[^0-9a-f]/g, '')).join(''), 'hex');
  assert.ok(relayed.length > 500, `${relayed.length} relayed bytes shown`);
  for (const plaintext of ['Hello from coapsec', 'hello', 'valve', 'time', ...notes.map((n) => n.text)]) {
    assert.equal(relayed.indexOf(plaintext), -1, `${plaintext} readable in what the proxy relayed`);
  }
  assert.match(rows[0]![2]!, /2\.05 Content: Hello from coapsec/);

  const artifacts = join(ROOT, 'test-artifacts');
  mkdirSync(artifacts, { recursive: true });
  const shot = join(artifacts, 'browser-demo.png');
  await browser.page.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 10_000);
  process.stdout.write(`# demo page screenshot: ${shot}\n`);
});
