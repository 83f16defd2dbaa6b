/** `serve --dir` (src/demo/files.ts): files up to MAX_FILE_SIZE, 5.00 with a diagnostic beyond. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ResponseCode } from '../src/coap/codes.js';
import { CoapClient } from '../src/client/client.js';
import { MAX_FILE_SIZE } from '../src/demo/files.js';
import { addDemoResources } from '../src/demo/resources.js';
import { CoapServer } from '../src/server/server.js';

test('serve --dir: a file at the size limit is served; one byte more gets 5.00 with a diagnostic, not 4.13', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-files-'));
  writeFileSync(join(dir, 'limit.bin'), Buffer.alloc(MAX_FILE_SIZE, 1));
  writeFileSync(join(dir, 'over.bin'), Buffer.alloc(MAX_FILE_SIZE + 1, 2));
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  addDemoResources(server, { tick: false, dir });
  const client = new CoapClient();
  const base = `coap://127.0.0.1:${server.address().port}`;
  try {
    assert.equal(MAX_FILE_SIZE, 1 << 20);
    const fits = await client.get(`${base}/limit.bin`);
    assert.equal(fits.code, ResponseCode.Content);
    assert.equal(fits.payload.length, MAX_FILE_SIZE);
    // RFC 7252 §5.9.2.9: 4.13 is about the request's payload; this request has none. The limit is
    // the server's own, so the answer is a 5.xx (§5.9.3), with a diagnostic payload (§5.5.2).
    const tooLarge = await client.get(`${base}/over.bin`);
    assert.equal(tooLarge.status, '5.00 Internal Server Error');
    assert.equal(tooLarge.text(), 'over.bin is larger than the 1 MiB that serve --dir serves');
  } finally {
    await client.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
