/**
 * The browser build's EDHOC (src/browser/edhoc.ts on the Web Crypto provider) in Node, whose
 * globalThis.crypto.subtle is Web Crypto too: the RFC 9529 traces of
 * test/support/edhoc-traces-browser.ts (the same ones headless Chromium runs in
 * test/browser-chromium.test.ts), and interoperation with the Node build's EDHOC both ways.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as browser from '../src/browser/index.js';
import { checkRfc9529 } from './support/edhoc-traces-browser.js';

test('RFC 9529 traces through the browser build with Web Crypto (in Node)', async () => {
  const results = await checkRfc9529(browser);
  assert.equal(results.length, 13, JSON.stringify(results));
  for (const r of results) assert.ok(r.ok, `${r.name}: ${r.detail}`);
});
