// The browser bundle of coapsec/browser: `node scripts/build-browser.mjs` (npm run build:browser)
// writes dist/browser/coapsec.js, one minified ES module for a page without a bundler, and prints
// its size. esbuild bundles straight from src/browser/index.ts with platform "browser" and no
// externals, so the build fails if anything on the path imports a Node built-in; a free `Buffer`
// is renamed to a marker and reported, since esbuild would leave it for the browser to trip on.
import { gzipSync } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ENTRY = join(ROOT, 'src', 'browser', 'index.ts');
export const OUTFILE = join(ROOT, 'dist', 'browser', 'coapsec.js');
const BUFFER_MARKER = '__coapsec_node_Buffer__';

/**
 * Bundles coapsec/browser. Resolves with the bundle's text, its size minified and gzipped, the
 * source files it holds and the modules that still use Node's global Buffer; rejects with
 * esbuild's errors (an unresolvable node: import among them).
 */
export async function bundleBrowser({ minify = true } = {}) {
  const result = await esbuild.build({
    entryPoints: [ENTRY],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify,
    write: false,
    metafile: true,
    logLevel: 'silent',
    legalComments: 'none',
    define: { Buffer: BUFFER_MARKER },
  });
  const text = result.outputFiles[0].text;
  const inputs = Object.keys(result.metafile.inputs);
  const bufferUsers = minify ? [] : inputs.filter((file) => sectionOf(text, file).includes(BUFFER_MARKER));
  return { text, bytes: Buffer.byteLength(text), gzipBytes: gzipSync(text, { level: 9 }).length, inputs, bufferUsers, usesBuffer: text.includes(BUFFER_MARKER) };
}

/** The part of an unminified bundle that came from `file` (esbuild heads each with `// file`). */
function sectionOf(text, file) {
  const start = text.indexOf(`\n// ${file}\n`);
  if (start < 0) return '';
  const end = text.indexOf('\n// ', start + file.length + 5);
  return text.slice(start, end < 0 ? text.length : end);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const bundle = await bundleBrowser();
  if (bundle.usesBuffer) {
    const located = await bundleBrowser({ minify: false });
    console.error(`coapsec/browser uses Node's Buffer in: ${located.bufferUsers.join(', ')}`);
    process.exit(1);
  }
  mkdirSync(dirname(OUTFILE), { recursive: true });
  writeFileSync(OUTFILE, bundle.text);
  console.log(`dist/browser/coapsec.js: ${bundle.bytes} bytes minified, ${bundle.gzipBytes} bytes gzipped, ${bundle.inputs.length} modules`);
}
