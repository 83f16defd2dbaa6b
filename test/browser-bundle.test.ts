/**
 * coapsec/browser bundles for a browser with no Node built-in on its path: esbuild with platform
 * "browser" and no externals fails on any `node:` import, and a module that still uses Node's
 * global Buffer is found by name. The bundle's size is what docs/browser.md and BENCHMARKS.md
 * record (within 10 %).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT } from './support/examples.js';

// scripts/ is not compiled into dist/: the module is loaded from the repository, typed by its .d.mts.
const { bundleBrowser } = (await import(pathToFileURL(join(ROOT, 'scripts', 'build-browser.mjs')).href)) as typeof import('../scripts/build-browser.mjs');

test('coapsec/browser bundles with platform "browser", no externals, no node: module and no Buffer', async () => {
  const bundle = await bundleBrowser({ minify: false });
  assert.deepEqual(bundle.inputs.filter((f) => f.startsWith('node:') || /(^|\/)node_modules\/ws\//.test(f)), []);
  assert.deepEqual(bundle.bufferUsers, []);
  assert.equal(bundle.usesBuffer, false);
  // The build takes the layers it claims to, not copies of them.
  for (const layer of ['src/coap/codec.ts', 'src/stream/connection.ts', 'src/stream/carrier.ts', 'src/exchange/endpoint.ts', 'src/client/blockwise.ts', 'src/oscore/cose-object.ts', 'src/crypto/web-crypto.ts', 'src/credentials/indexeddb-sequence-store.ts', 'src/edhoc/initiator-steps.ts', 'src/edhoc/responder-steps.ts', 'src/browser/edhoc-crypto.ts']) {
    assert.ok(bundle.inputs.includes(layer), `${layer} is not in the bundle`);
  }
  for (const nodeOnly of ['src/oscore/algorithms.ts', 'src/crypto/aes-ccm.ts', 'src/transport/ws.ts', 'src/client/client.ts', 'src/edhoc/node-crypto.ts', 'src/edhoc/initiator.ts', 'src/cose/key.ts']) {
    assert.ok(!bundle.inputs.includes(nodeOnly), `${nodeOnly} (Node only) is in the bundle`);
  }
});

test('the recorded bundle size is the size of the bundle', async () => {
  const bundle = await bundleBrowser();
  const kib = (n: number): number => Math.round(n / 1024);
  const close = (recorded: number, actual: number): boolean => Math.abs(recorded - actual) <= Math.max(2, actual * 0.1);
  for (const doc of ['docs/browser.md', 'BENCHMARKS.md']) {
    const text = readFileSync(join(ROOT, doc), 'utf8');
    const match = /coapsec\.js[^\n]*?(\d+) KiB minified, (\d+) KiB gzipped/.exec(text);
    assert.ok(match, `${doc} records no bundle size ("N KiB minified, M KiB gzipped")`);
    assert.ok(close(Number(match[1]), kib(bundle.bytes)), `${doc}: ${match[1]} KiB minified recorded, the bundle is ${kib(bundle.bytes)} KiB`);
    assert.ok(close(Number(match[2]), kib(bundle.gzipBytes)), `${doc}: ${match[2]} KiB gzipped recorded, the bundle is ${kib(bundle.gzipBytes)} KiB`);
  }
});
