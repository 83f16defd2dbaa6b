/**
 * `coapsec store` and `serve --store` at the command line: clear one-line errors for bad usage and
 * a store that cannot be used, never a stack trace; `store put`/`list`/`delete` on the file store.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertUsageError, coapsec, killChildren } from './support/cli-harness.js';

const directory = mkdtempSync(join(tmpdir(), 'coapsec-store-cli-'));
after(() => {
  killChildren();
  rmSync(directory, { recursive: true, force: true });
});

test('store put, list and delete on the file store', async () => {
  assert.equal((await coapsec(['credentials', 'new', '--peer', 'meter-7', '--out-dir', directory])).code, 0);
  const store = join(directory, 'store');
  const put = await coapsec(['store', 'put', '--store', store, '--credentials', join(directory, 'server.json')]);
  assert.equal(put.code, 0, put.stderr);
  const kid = /kid ([0-9a-f]+)/.exec(put.stdout)![1]!;
  const listed = await coapsec(['store', 'list', '--store', store]);
  assert.equal(listed.stdout, `kid ${kid}  id-context -  meter-7\n`);
  assert.doesNotMatch(listed.stdout, /[0-9a-f]{32}/, 'no key material');
  assert.equal((await coapsec(['store', 'delete', '--store', store, '--kid', kid])).code, 0);
  assert.equal((await coapsec(['store', 'list', '--store', store])).stdout, '');
});

test('bad usage and an unusable store: one line, exit 2, no stack trace', async () => {
  assertUsageError(await coapsec(['store', 'put', '--credentials', 'x.json']), /needs --store/);
  assertUsageError(await coapsec(['store', 'frobnicate', '--store', directory]), /unknown store subcommand/);
  assertUsageError(await coapsec(['store', 'delete', '--store', directory, '--kid', 'xyz']), /hex digits/);
  // Nothing listens on port 1: the store names itself and the reason.
  const down = await coapsec(['serve', '--bind', '127.0.0.1:0', '--store', 'redis://127.0.0.1:1'], { timeout: 15_000 });
  assertUsageError(down, /--store: redis:\/\/127\.0\.0\.1:1: connect failed/);
  // With --store, --credentials is for an "edhoc" section only (test/store-edhoc-cli.test.ts); a missing file is named.
  assertUsageError(await coapsec(['serve', '--store', directory, '--credentials', 'x.json']), /x\.json: cannot read the credentials file/);
  assertUsageError(await coapsec(['serve', '--store', directory, '--oscore-conf', 'x.conf']), /either --store or --oscore-conf/);
  const proxyDown = await coapsec(['proxy', '--forward', '--bind', '127.0.0.1:0', '--store', 'redis://127.0.0.1:1'], { timeout: 15_000 });
  assertUsageError(proxyDown, /--store: redis:\/\/127\.0\.0\.1:1: connect failed/);
});
