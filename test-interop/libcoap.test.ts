/**
 * Interoperability with Debian's libcoap 4.3 (package libcoap3-bin), on loopback only:
 *  - libcoap's coap-client-notls against `coapsec serve`;
 *  - our CLI and our CoapClient against libcoap's example server coap-server-notls.
 * libcoap's client exits 0 whatever the response code, so codes are read from its PDU log (-v 6).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { parseLinkFormat } from '../src/coap/link-format.js';
import { MessageType } from '../src/coap/message.js';
import { largeText } from '../src/demo/resources.js';
import {
  HOST,
  coapsec,
  libcoapClient,
  parsePdus,
  startCoapsecServer,
  startLibcoapServer,
  stop,
  stopAll,
  which,
  type Daemon,
  type LibcoapResult,
} from './support.js';

/** libcoap's log for an assertion message, long payloads cut. */
const brief = (log: string): string => log.replace(/'([^']{60})[^']{40,}'/g, "'$1…'").slice(0, 3000);

const missing = ['coap-client-notls', 'coap-server-notls'].filter((name) => which(name) === undefined);

if (missing.length > 0) {
  // Not a skip: CI installs libcoap, so its absence is a broken setup that must show.
  test('libcoap is installed', () => {
    assert.fail(`${missing.join(' and ')} not found on PATH: install Debian's libcoap3-bin (apt-get install -y libcoap3-bin), as .ci/run does`);
  });
} else {
  defineTests();
}

function defineTests(): void {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'coapsec-interop-'));
  });
  after(async () => {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  });

  describe('libcoap client → coapsec serve', () => {
    let server: Daemon;
    let base: string;
    let files: string;
    const client = (args: readonly string[], waitSeconds?: number): Promise<LibcoapResult> =>
      libcoapClient(args, { tmpDir: tmp, ...(waitSeconds !== undefined ? { waitSeconds } : {}) });

    before(async () => {
      files = join(tmp, 'files');
      mkdirSync(join(files, 'sub'), { recursive: true });
      writeFileSync(join(files, 'notes.txt'), 'file served by coapsec');
      writeFileSync(join(files, 'sub', 'data.json'), '{"answer":42}');
      server = await startCoapsecServer(['--dir', files]);
      base = `coap://${HOST}:${server.port}`;
    });
    after(async () => {
      await stop(server.child);
    });

    test('GET /hello: 2.05, text/plain, exact payload', async () => {
      const r = await client([`${base}/hello`]);
      assert.equal(r.responseCode, '2.05', brief(r.stdout));
      assert.equal(r.response!.type, 'ACK', 'piggybacked on the ACK');
      assert.match(r.response!.options, /Content-Format:text\/plain/);
      assert.equal(r.body, 'Hello from coapsec');
    });

    test('the response echoes the token libcoap chose (-T)', async () => {
      const r = await client(['-T', 'cafe', `${base}/hello`]);
      const [request, response] = r.pdus;
      assert.equal(request!.code, 'GET');
      assert.ok(request!.token.length > 0);
      assert.equal(response!.token, request!.token);
      assert.equal(response!.messageId, request!.messageId);
      assert.equal(r.responseCode, '2.05');
    });

    test('PUT /valve 5 → 2.04, then GET /valve → "5" with Max-Age 0', async () => {
      const put = await client(['-m', 'put', '-e', '5', `${base}/valve`]);
      assert.equal(put.responseCode, '2.04', brief(put.stdout));
      const get = await client([`${base}/valve`]);
      assert.equal(get.responseCode, '2.05');
      assert.equal(get.body, '5');
      assert.match(get.response!.options, /Max-Age:0/);
    });

    test('PUT /valve 42 → 4.00 with a diagnostic payload', async () => {
      const r = await client(['-m', 'put', '-e', '42', `${base}/valve`]);
      assert.equal(r.responseCode, '4.00', brief(r.stdout));
      assert.match(r.response!.payload ?? '', /level must be an integer from 0 to 10/);
      // The valve kept its level.
      assert.equal((await client([`${base}/valve`])).body, '5');
    });

    test('POST /echo echoes the payload and its Content-Format', async () => {
      const r = await client(['-m', 'post', '-t', 'text/plain', '-e', 'ping%20from%20libcoap', `${base}/echo`]);
      assert.equal(r.responseCode, '2.04', brief(r.stdout));
      assert.equal(r.body, 'ping from libcoap');
      assert.match(r.response!.options, /Content-Format:text\/plain/);
    });

    test('POST /echo with a file body (-f)', async () => {
      const r = await client(['-m', 'post', '-f', join(files, 'sub', 'data.json'), `${base}/echo`]);
      assert.equal(r.responseCode, '2.04');
      assert.equal(r.body, '{"answer":42}');
    });

    test('DELETE /hello → 4.05', async () => {
      const r = await client(['-m', 'delete', `${base}/hello`]);
      assert.equal(r.responseCode, '4.05', brief(r.stdout));
    });

    test('GET /nothing → 4.04', async () => {
      const r = await client([`${base}/nothing`]);
      assert.equal(r.responseCode, '4.04', brief(r.stdout));
    });

    test('GET /.well-known/core lists the resources and the files', async () => {
      const r = await client([`${base}/.well-known/core`]);
      assert.equal(r.responseCode, '2.05');
      assert.match(r.response!.options, /Content-Format:application\/link-format/);
      const hrefs = parseLinkFormat(r.body).map((l) => l.href);
      for (const href of ['/hello', '/echo', '/alarm', '/valve', '/config', '/time', '/large', '/notes.txt', '/sub/data.json']) {
        assert.ok(hrefs.includes(href), `${href} in ${r.body}`);
      }
      assert.ok(!hrefs.includes('/.well-known/core'));
      assert.match(r.body, /<\/valve>;rt="demo.valve"/);
    });

    test('GET /.well-known/core?rt=demo.valve filters (RFC 6690 §4.1)', async () => {
      const r = await client([`${base}/.well-known/core?rt=demo.valve`]);
      assert.equal(r.responseCode, '2.05');
      assert.deepEqual(parseLinkFormat(r.body).map((l) => l.href), ['/valve']);
    });

    test('GET a file from --dir, at top level and in a subfolder', async () => {
      const text = await client([`${base}/notes.txt`]);
      assert.equal(text.responseCode, '2.05');
      assert.equal(text.body, 'file served by coapsec');
      assert.match(text.response!.options, /Content-Format:text\/plain/);
      const json = await client([`${base}/sub/data.json`]);
      assert.equal(json.responseCode, '2.05');
      assert.equal(json.body, '{"answer":42}');
      assert.match(json.response!.options, /Content-Format:application\/json/);
    });

    test('a NON request (-N) gets a NON response', async () => {
      const r = await client(['-N', `${base}/hello`]);
      assert.equal(r.pdus[0]!.type, 'NON');
      assert.equal(r.responseCode, '2.05', brief(r.stdout));
      assert.equal(r.response!.type, 'NON');
      assert.equal(r.response!.token, r.pdus[0]!.token);
      assert.equal(r.body, 'Hello from coapsec');
    });

    test('FETCH /config with a JSON array of keys (RFC 8132)', async () => {
      const r = await client(['-m', 'fetch', '-t', 'json', '-e', '["unit","interval"]', `${base}/config`]);
      assert.equal(r.pdus[0]!.code, 'FETCH');
      assert.equal(r.responseCode, '2.05', brief(r.stdout));
      assert.match(r.response!.options, /Content-Format:application\/json/);
      assert.deepEqual(JSON.parse(r.body), { unit: 'celsius', interval: 10 });
    });

    test('FETCH /echo answers 2.05 with the body', async () => {
      const r = await client(['-m', 'fetch', '-e', 'fetched', `${base}/echo`]);
      assert.equal(r.responseCode, '2.05');
      assert.equal(r.body, 'fetched');
    });

    test('iPATCH and PATCH /config with a merge patch (52), ETag changes, stale If-Match → 4.12, "id" → 4.09', async () => {
      const initial = await client([`${base}/config`]);
      assert.equal(initial.responseCode, '2.05');
      const etagBefore = /ETag:(0x[0-9a-f]+)/.exec(initial.response!.options)?.[1];
      assert.ok(etagBefore, initial.response!.options);

      const ipatch = await client(['-m', 'ipatch', '-t', '52', '-e', '{"interval":5}', `${base}/config`]);
      assert.equal(ipatch.pdus[0]!.code, 'iPATCH');
      assert.equal(ipatch.responseCode, '2.04', brief(ipatch.stdout));
      const etagAfter = /ETag:(0x[0-9a-f]+)/.exec(ipatch.response!.options)?.[1];
      assert.ok(etagAfter && etagAfter !== etagBefore, `new ETag ${etagAfter} after ${etagBefore}`);

      const patch = await client(['-m', 'patch', '-t', '52', '-e', '{"unit":"kelvin"}', `${base}/config`]);
      assert.equal(patch.pdus[0]!.code, 'PATCH');
      assert.equal(patch.responseCode, '2.04', brief(patch.stdout));

      const read = await client([`${base}/config`]);
      assert.deepEqual(JSON.parse(read.body), { id: 'coapsec-demo', interval: 5, unit: 'kelvin' });

      // If-Match (option 1) with the first ETag, now stale.
      const stale = await client(['-m', 'ipatch', '-t', '52', '-O', `1,${etagBefore}`, '-e', '{"interval":1}', `${base}/config`]);
      assert.match(stale.pdus[0]!.options, /If-Match/);
      assert.equal(stale.responseCode, '4.12', brief(stale.stdout));

      const conflict = await client(['-m', 'patch', '-t', '52', '-e', '{"id":"x"}', `${base}/config`]);
      assert.equal(conflict.responseCode, '4.09', brief(conflict.stdout));

      const wrongFormat = await client(['-m', 'patch', '-t', 'json', '-e', '{"interval":1}', `${base}/config`]);
      assert.equal(wrongFormat.responseCode, '4.15', brief(wrongFormat.stdout));
    });

    test('an unrecognized critical option (65001) → 4.02; an unrecognized elective one (65000) is ignored', async () => {
      const critical = await client(['-O', '65001,x', `${base}/hello`]);
      assert.match(critical.pdus[0]!.options, /65001/);
      assert.equal(critical.responseCode, '4.02', brief(critical.stdout));
      const elective = await client(['-O', '65000,x', `${base}/hello`]);
      assert.equal(elective.responseCode, '2.05', brief(elective.stdout));
      assert.equal(elective.body, 'Hello from coapsec');
    });

    test('Accept: text/plain → 2.05, application/json on a text resource → 4.06', async () => {
      const ok = await client(['-A', 'text/plain', `${base}/hello`]);
      assert.match(ok.pdus[0]!.options, /Accept:text\/plain/);
      assert.equal(ok.responseCode, '2.05');
      const notAcceptable = await client(['-A', 'json', `${base}/hello`]);
      assert.equal(notAcceptable.responseCode, '4.06', brief(notAcceptable.stdout));
    });

    test('Uri-Host and Uri-Query options are accepted', async () => {
      const r = await client(['-O', '3,localhost', `${base}/hello?a=1&b=2`]);
      assert.match(r.pdus[0]!.options, /Uri-Host:localhost/);
      assert.match(r.pdus[0]!.options, /Uri-Query:a=1, Uri-Query:b=2/);
      assert.equal(r.responseCode, '2.05');
    });

    test('No-Response (RFC 7967) suppressing 4.xx: GET /nothing as NON gets no answer', async () => {
      // Bit 8 suppresses 4.xx; a NON then gets nothing at all. libcoap waits its -B 1 second.
      const r = await client(['-N', '-O', '258,0x08', `${base}/nothing`], 1);
      assert.match(r.pdus[0]!.options, /No-Response/);
      assert.equal(r.responseCode, undefined, brief(r.stdout));
      // ...while a 2.05 is still sent.
      const ok = await client(['-N', '-O', '258,0x08', `${base}/hello`]);
      assert.equal(ok.responseCode, '2.05', brief(ok.stdout));
    });

    test('an Observe registration (-s) on /time gets a 2.05 with the time', async () => {
      const r = await client(['-s', '1', `${base}/time`], 3);
      assert.match(r.pdus[0]!.options, /Observe:0/);
      assert.equal(r.responseCode, '2.05', brief(r.stdout));
      assert.match(r.body, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
    });

    test('GET /large (8192 bytes) arrives whole, block-wise', async () => {
      const r = await client([`${base}/large`], 3);
      assert.equal(r.responseCode, '2.05', brief(r.stdout));
      assert.equal(r.body, largeText());
    });

    test('-b 64: GET /large in 64-byte blocks (early negotiation) arrives intact', async () => {
      const r = await client(['-b', '64', `${base}/large`], 5);
      assert.equal(r.body, largeText());
      assert.match(r.pdus[0]!.options, /Block2:0\/_\/64/, 'early negotiation in the first request');
      const blocks = r.pdus.filter((p) => p.code === '2.05' && /Block2:\d+\/[M_]\/64/.test(p.options));
      assert.equal(blocks.length, 8192 / 64, brief(r.stdout));
    });

    test('-m put -b 64 -f FILE: a 20 KiB body goes out in Block1 blocks and arrives intact', async () => {
      const body = Array.from({ length: 20 * 1024 }, (_, i) => String.fromCharCode(97 + ((i * 7) % 26))).join('');
      const file = join(tmp, 'body-20k');
      writeFileSync(file, body);
      const r = await client(['-m', 'put', '-b', '64', '-f', file, `${base}/echo`], 10);
      assert.equal(r.responseCode, '2.04', brief(r.stdout));
      assert.equal(r.body, body, 'the echo returns exactly the uploaded body');
      assert.match(r.pdus[0]!.options, /Block1:0\/M\/64/, 'the body went out in 64-byte blocks');
      assert.match(r.response!.options, /Block1:319\/_\/64/, 'the final response acknowledges the 320th block');
    });

    test('-s 5: observing /time yields at least 4 notifications', async () => {
      const r = await libcoapClient(['-s', '5', `${base}/time`], { tmpDir: tmp, waitSeconds: 6, timeout: 12_000 });
      const notifications = r.pdus.filter((p) => p.code === '2.05' && /Observe:\d+/.test(p.options));
      assert.ok(notifications.length >= 4, `got ${notifications.length} notifications:\n${brief(r.stdout)}`);
    });

    test('POST /echo of 2000 bytes (libcoap sends it with Block1) is echoed', async () => {
      const body = 'b'.repeat(2000);
      const file = join(tmp, 'large-body');
      writeFileSync(file, body);
      const r = await client(['-m', 'post', '-f', file, `${base}/echo`], 3);
      assert.equal(r.responseCode, '2.04', brief(r.stdout));
      assert.equal(r.body, body);
    });

    test('the server logged nothing unexpected', () => {
      assert.match(server.output(), /^coapsec serving on coap:\/\/127\.0\.0\.1:\d+\n$/);
    });
  });

  describe('coapsec CLI and CoapClient → libcoap server', () => {
    let server: Daemon;
    let base: string;
    /** The server logs every PDU it receives and sends at -v 7. */
    const serverPdus = () => parsePdus(server.output());
    const waitForServerLog = async (predicate: (log: ReturnType<typeof parsePdus>) => boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 3000;
      while (!predicate(serverPdus())) {
        if (Date.now() > deadline) assert.fail(`libcoap's log never showed ${what}:\n${server.output().slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };

    before(async () => {
      server = await startLibcoapServer(['-v', '7']);
      base = `coap://${HOST}:${server.port}`;
    });
    after(async () => {
      await stop(server.child);
    });

    test('get / → exit 0, libcoap\'s text index', async () => {
      const r = await coapsec(['get', `${base}/`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^This is a test server made with libcoap/);
      assert.equal(r.stderr, '');
    });

    test('get /time → exit 0, a time of day', async () => {
      const r = await coapsec(['get', `${base}/time`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d$/);
    });

    test('get /example_data: the 1500-byte initial value, sent by libcoap with Block2', async () => {
      const r = await coapsec(['get', `${base}/example_data`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, 1500);
    });

    test('get -b 64 /example_data: early negotiation, 64-byte blocks, reassembled', async () => {
      const r = await coapsec(['get', '-b', '64', `${base}/example_data`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, 1500);
      await waitForServerLog((log) => log.some((p) => /Block2:23\/_\/64/.test(p.options)), 'a request for block 23 of 64 bytes');
    });

    test('observe /time --count 3: notifications from libcoap, then an active deregistration', async () => {
      const r = await coapsec(['observe', `${base}/time`, '--count', '3'], { timeout: 10_000 });
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 3);
      for (const line of lines) assert.match(line, /\d\d:\d\d:\d\d/);
      await waitForServerLog((log) => log.some((p) => p.code === 'GET' && /Observe:1/.test(p.options)), 'a GET with Observe 1');
    });

    test('put /example_data --payload hello → 2.04, then get returns it', async () => {
      const put = await coapsec(['put', `${base}/example_data`, '--payload', 'hello', '-v']);
      assert.equal(put.code, 0, put.stderr);
      assert.match(put.stderr, /^2\.04 Changed$/m);
      const get = await coapsec(['get', `${base}/example_data`]);
      assert.equal(get.code, 0, get.stderr);
      assert.equal(get.stdout, 'hello');
    });

    test('get /nothing → exit 4, "4.04 Not Found" on stderr', async () => {
      const r = await coapsec(['get', `${base}/nothing`]);
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /^4\.04 Not Found$/m);
      assert.equal(r.stdout, 'Not Found', 'libcoap\'s diagnostic payload');
    });

    test('fetch /example_data → exit 4 (4.05: libcoap\'s resource has no FETCH)', async () => {
      const r = await coapsec(['fetch', `${base}/example_data`, '--payload', 'x']);
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /^4\.05 Method Not Allowed$/m);
    });

    test('--json prints one parseable object', async () => {
      const r = await coapsec(['get', `${base}/time`, '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim().split('\n').length, 1);
      const json = JSON.parse(r.stdout) as { code: string; status: string; options: Array<{ number: number; name: string; value: unknown }>; payload: string };
      assert.equal(json.code, '2.05');
      assert.equal(json.status, 'Content');
      assert.deepEqual(json.options, [{ number: 14, name: 'Max-Age', value: 1 }]);
      assert.match(json.payload, /\d\d:\d\d:\d\d$/);
    });

    test('-v shows "2.05 Content" and the options on stderr', async () => {
      const r = await coapsec(['get', `${base}/`, '-v']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /^2\.05 Content$/m);
      assert.match(r.stderr, /^ {2}Max-Age: \d+$/m);
    });

    test('--non sends a NON request (libcoap logs t:NON) and gets the answer', async () => {
      const r = await coapsec(['get', `${base}/time`, '--non', '-v']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /\d\d:\d\d:\d\d$/);
      await waitForServerLog((pdus) => pdus.some((p) => p.type === 'NON' && p.code === 'GET'), 'a NON GET');
    });

    test('a separate response (libcoap /async?1: empty ACK, then a CON 2.05) is received and ACKed', async () => {
      const r = await coapsec(['get', `${base}/async?1`, '-v']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'done');
      assert.ok(r.ms >= 900, `took ${r.ms} ms: the server delays 1 s`);
      let separate: ReturnType<typeof parsePdus>[number] | undefined;
      await waitForServerLog((pdus) => {
        separate = pdus.find((p) => p.type === 'CON' && p.code === '2.05' && p.payload === "'done'");
        return separate !== undefined && pdus.some((p) => p.type === 'ACK' && p.code === '0.00' && p.messageId === separate!.messageId);
      }, 'our empty ACK of the separate response');
    });

    test('CoapClient: discovery, PUT and GET, ping', async () => {
      const client = new CoapClient();
      try {
        const core = await client.get(`${base}/.well-known/core`, { timeout: 5000 });
        assert.equal(core.status, '2.05 Content');
        assert.equal(core.contentFormat, 40);
        const hrefs = parseLinkFormat(core.text()).map((l) => l.href);
        assert.ok(['/', '/time', '/async', '/example_data'].every((h) => hrefs.includes(h)), core.text());

        const put = await client.put(`${base}/example_data`, 'from CoapClient', { contentFormat: 0, timeout: 5000 });
        assert.equal(put.status, '2.04 Changed');
        const get = await client.get(`${base}/example_data`, { timeout: 5000 });
        assert.equal(get.text(), 'from CoapClient');

        const nonGet = await client.get(`${base}/`, { confirmable: false, timeout: 5000 });
        assert.ok(nonGet.ok);
        assert.equal(nonGet.message.type, MessageType.NON, 'NON answered with NON');

        const rtt = await client.ping(base);
        assert.ok(rtt >= 0 && rtt < 5000, `rtt ${rtt}`);
      } finally {
        await client.close();
      }
    });

    test('CoapClient retransmits a CON when libcoap drops its first response (-l 1)', async () => {
      const lossy = await startLibcoapServer(['-v', '7', '-l', '1'], { ready: 'log' });
      const client = new CoapClient();
      try {
        const started = performance.now();
        const response = await client.get(`coap://${HOST}:${lossy.port}/`, { timeout: 8000 });
        const ms = performance.now() - started;
        assert.ok(response.ok);
        assert.match(response.text(), /libcoap/);
        assert.ok(ms >= 1900, `answered after ${ms.toFixed(0)} ms, so after one retransmission (ACK_TIMEOUT 2 s)`);
        const requests = parsePdus(lossy.output()).filter((p) => p.code === 'GET' && p.type === 'CON');
        assert.equal(requests.length, 2, lossy.output());
        assert.equal(requests[0]!.messageId, requests[1]!.messageId, 'a retransmission keeps its Message ID');
        assert.equal(requests[0]!.token, requests[1]!.token);
      } finally {
        await client.close();
        await stop(lossy.child);
      }
    });
  });
}
