/**
 * The browser build inside a real headless Chromium (Debian's chromium through playwright-core,
 * test/support/chromium.ts): the RFC 8613 Appendix C vectors and the RFC 9529 EDHOC traces run by
 * the bundled dist/browser/coapsec.js with Chromium's Web Crypto, and the IndexedDB sequence store keeps its
 * Appendix B.1.1 promise across a page reload (no number handed out twice).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import * as esbuild from 'esbuild';
import { launchChromium, pageResults, servePages, type HeadlessChromium } from './support/chromium.js';
import { ROOT } from './support/examples.js';
import type { VectorResult } from './support/oscore-appendix-c.js';

const { bundleBrowser } = (await import(pathToFileURL(join(ROOT, 'scripts', 'build-browser.mjs')).href)) as typeof import('../scripts/build-browser.mjs');

const VECTORS_PAGE = `<!doctype html><meta charset="utf-8"><title>coapsec Appendix C</title>
<script type="module">
import * as coapsec from '/coapsec.js';
import { checkAppendixC } from '/appendix-c.js';
checkAppendixC(coapsec).then(
  (results) => { window.__results = { userAgent: navigator.userAgent, results }; },
  (error) => { window.__results = { userAgent: navigator.userAgent, results: [{ name: 'the page', ok: false, detail: String(error) }] }; },
);
</script>`;

const EDHOC_PAGE = `<!doctype html><meta charset="utf-8"><title>coapsec RFC 9529</title>
<script type="module">
import * as coapsec from '/coapsec.js';
import { checkRfc9529 } from '/rfc9529.js';
checkRfc9529(coapsec).then(
  (results) => { window.__results = { userAgent: navigator.userAgent, results }; },
  (error) => { window.__results = { userAgent: navigator.userAgent, results: [{ name: 'the page', ok: false, detail: String(error) }] }; },
);
</script>`;

let site: Awaited<ReturnType<typeof servePages>>;
let browser: HeadlessChromium;

before(async () => {
  const bundle = await bundleBrowser();
  assert.equal(bundle.usesBuffer, false);
  const bundleSupport = (file: string) => esbuild.build({ entryPoints: [join(ROOT, 'test', 'support', file)], bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent' });
  const vectors = await bundleSupport('oscore-appendix-c.ts');
  const traces = await bundleSupport('edhoc-traces-browser.ts');
  const js = 'text/javascript';
  site = await servePages({
    '/': { type: 'text/html', body: VECTORS_PAGE },
    '/blank.html': { type: 'text/html', body: '<!doctype html><meta charset="utf-8"><title>coapsec</title>' },
    '/coapsec.js': { type: js, body: bundle.text },
    '/appendix-c.js': { type: js, body: vectors.outputFiles[0]!.text },
    '/edhoc.html': { type: 'text/html', body: EDHOC_PAGE },
    '/rfc9529.js': { type: js, body: traces.outputFiles[0]!.text },
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await site?.close();
});

test('RFC 8613 Appendix C vectors pass inside headless Chromium with its Web Crypto', async () => {
  const { userAgent, results } = await pageResults<{ userAgent: string; results: VectorResult[] }>(browser, `${site.origin}/`);
  assert.match(userAgent, /HeadlessChrome\/\d+/, 'not headless Chromium');
  assert.equal(results.length, 15, JSON.stringify(results));
  for (const r of results) assert.ok(r.ok, `${r.name}: ${r.detail}`);
});

test('RFC 9529 EDHOC traces pass inside headless Chromium with its Web Crypto, byte for byte, both roles', async () => {
  const { userAgent, results } = await pageResults<{ userAgent: string; results: VectorResult[] }>(browser, `${site.origin}/edhoc.html`);
  assert.match(userAgent, /HeadlessChrome\/\d+/, 'not headless Chromium');
  assert.equal(results.length, 15, JSON.stringify(results));
  for (const r of results) assert.ok(r.ok, `${r.name}: ${r.detail}`);
});

test('IndexedDB sequence numbers: after a page reload the counter starts above every number used before', async () => {
  const draw = (count: number): Promise<number[]> =>
    browser.page.evaluate(async (n) => {
      // The page's own import of the bundle: nothing from Node reaches it.
      const coapsec = await import('/coapsec.js' as string);
      const storage = await coapsec.IndexedDbReservations.open('coapsec-test');
      const key = await coapsec.senderKeyName({ masterSecret: new Uint8Array([1, 2, 3]), senderId: new Uint8Array([0xc1]) });
      const sequence = await coapsec.ReservedSequence.open(storage, key, 8);
      const numbers: number[] = [];
      for (let i = 0; i < n; i++) numbers.push(await sequence.next());
      storage.close();
      return numbers;
    }, count);
  await browser.page.goto(`${site.origin}/blank.html`);
  const before = await draw(20);
  assert.deepEqual(before, Array.from({ length: 20 }, (_, i) => i + (before[0] ?? 0)));
  await browser.page.reload();
  const afterReload = await draw(5);
  await browser.page.reload();
  const again = await draw(5);
  const all = [...before, ...afterReload, ...again];
  assert.equal(new Set(all).size, all.length, `a number was handed out twice: ${all.join(',')}`);
  assert.ok(afterReload[0]! > Math.max(...before), `after the reload the counter resumed at ${afterReload[0]}, below ${Math.max(...before)}`);
  assert.ok(again[0]! > Math.max(...afterReload));
});
