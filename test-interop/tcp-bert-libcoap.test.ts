/**
 * BERT (RFC 8323 §6) with Debian's libcoap 4.3.1 over coap+tcp: its server offers Block-Wise-Transfer
 * and a large Max-Message-Size in its CSM, so our client sends a 20000-byte PUT as BERT Block1 and
 * reassembles the GET of it from BERT Block2 blocks, each within our own Max-Message-Size.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { HOST, startLibcoapServer, stopAll, which } from './support.js';

if (which('coap-server-notls') === undefined) {
  test('libcoap is installed', () => assert.fail('coap-server-notls not found on PATH: install Debian\'s libcoap3-bin'));
} else {
  after(stopAll);
  test('our client ↔ coap-server-notls over coap+tcp: a 20000-byte PUT and GET in BERT blocks', async () => {
    const daemon = await startLibcoapServer(['-v', '7']);
    const client = new CoapClient();
    try {
      const uri = `coap+tcp://${HOST}:${daemon.port}/example_data`;
      const body = Buffer.alloc(20_000).map((_, i) => 0x41 + (i % 26));
      const put = await client.put(uri, body);
      assert.ok(put.status === '2.04 Changed' || put.status === '2.01 Created', put.status);
      const back = await client.get(uri);
      assert.equal(back.status, '2.05 Content');
      assert.deepEqual(back.payload, body);
      const log = daemon.output();
      assert.match(log, /c:PUT .*Block1:0\/_\/BERT\(20000\)/, 'the PUT went as one BERT Block1 (libcoap takes 8 MiB messages)');
      assert.match(log, /c:2\.05 .*Block2:0\/M\/BERT\(9216\)/, 'libcoap answered in BERT blocks of 9 KiB, within our Max-Message-Size of 9344');
      assert.match(log, /c:GET .*Block2:9\/_\/BERT/, 'we asked for the next BERT block by its 1024-byte unit');
    } finally {
      await client.close();
    }
  });
}
