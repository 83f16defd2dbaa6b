/**
 * The client flags libcoap's and aiocoap's clients have: -O, --token, --hop-limit, --local,
 * --repeat, ping, -o, pretty-printing (--pretty/--raw), --json's decoded field, --version,
 * per-command --help; and serve --proxy-name ending a proxy chain.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encode } from 'cbor2';
import { ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { decodeUint } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { addDemoResources } from '../src/demo/resources.js';
import { CoapServer } from '../src/server/server.js';
import { progressBar } from '../src/cli/progress.js';
import { assertUsageError, coapsec, killChildren, ROOT, startDaemon } from './support/cli-harness.js';

let server: CoapServer;
let base: string;
let tmp: string;
/** What /inspect saw of each request, in order. */
const seen: Array<{ token: string; options: Array<[number, string]>; peer: string }> = [];

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'coapsec-flags-'));
  server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  addDemoResources(server);
  server.resource('/inspect', {
    GET: (req) => {
      seen.push({ token: Buffer.from(req.message.token).toString('hex'), options: req.options.map((o) => [o.number, Buffer.from(o.value).toString('hex')]), peer: req.context.peerKey });
      return { code: ResponseCode.Content, payload: String(seen.length) };
    },
  });
  server.resource('/json', { GET: () => ({ code: ResponseCode.Content, contentFormat: ContentFormat.Json, payload: '{"a":1,"b":[2,3]}' }) });
  server.resource('/cbor', { GET: () => ({ code: ResponseCode.Content, contentFormat: ContentFormat.Cbor, payload: encode({ a: 1, b: new Uint8Array([0xca, 0xfe]) }) }) });
  base = `coap://127.0.0.1:${server.address().port}`;
});

after(async () => {
  killChildren();
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
});

const optionsOf = (i: number): Map<number, string> => new Map(seen[i]!.options);

describe('request options', () => {
  test('-O NUM,VALUE by number and by name: uint as a number, string as text, 0x as bytes', async () => {
    const before = seen.length;
    const r = await coapsec(['get', `${base}/inspect`, '-O', '4,0xc0ffee', '-O', 'Uri-Host,example.org', '-O', '60,1234', '-O', 'If-Match,0x0102']);
    assert.equal(r.code, 0, r.stderr);
    const options = optionsOf(before);
    assert.equal(options.get(OptionNumber.ETag), 'c0ffee');
    assert.equal(options.get(OptionNumber.UriHost), Buffer.from('example.org').toString('hex'));
    assert.equal(options.get(OptionNumber.Size1), '04d2', 'Size1 (uint) 1234');
    assert.equal(options.get(OptionNumber.IfMatch), '0102');
  });

  test('-O If-Match with a stale ETag: 4.12 from /config', async () => {
    const r = await coapsec(['ipatch', `${base}/config`, '--payload', '{}', '--content-format', '52', '-O', 'If-Match,0xdeadbeef']);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stderr, '4.12 Precondition Failed\n');
  });

  test('-O No-Response,2 suppresses the 2.05: no response, exit 3 at --timeout', async () => {
    const r = await coapsec(['get', `${base}/hello`, '--non', '-O', 'No-Response,2', '--timeout', '0.5']);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, '');
  });

  test('-O: bad values are usage errors', async () => {
    assertUsageError(await coapsec(['get', `${base}/hello`, '-O', 'No-Such-Option,1']), /no option number .* or known option name/);
    assertUsageError(await coapsec(['get', `${base}/hello`, '-O', 'Max-Age,soon']), /Max-Age takes a number/);
    assertUsageError(await coapsec(['get', `${base}/hello`, '-O', '65000,0xabc']), /odd number of digits/);
    assertUsageError(await coapsec(['get', `${base}/hello`, '-O', 'If-Match,0x' + '00'.repeat(9)]), /length range/);
  });

  test('--token HEX is the request token; --token with more than 8 bytes is a usage error', async () => {
    const before = seen.length;
    assert.equal((await coapsec(['get', `${base}/inspect`, '--token', '0xa1b2c3'])).code, 0);
    assert.equal(seen[before]!.token, 'a1b2c3');
    assert.equal((await coapsec(['get', `${base}/inspect`, '--token', 'd4e5'])).code, 0);
    assert.equal(seen[before + 1]!.token, 'd4e5');
    assertUsageError(await coapsec(['get', `${base}/inspect`, '--token', '00'.repeat(9)]), /--token: at most 8 bytes/);
  });

  test('--hop-limit N sends Hop-Limit; 0 and 256 are usage errors', async () => {
    const before = seen.length;
    assert.equal((await coapsec(['get', `${base}/inspect`, '--hop-limit', '7'])).code, 0);
    assert.equal(decodeUint(Buffer.from(optionsOf(before).get(OptionNumber.HopLimit)!, 'hex')), 7);
    assertUsageError(await coapsec(['get', `${base}/inspect`, '--hop-limit', '0']), /--hop-limit/);
    assertUsageError(await coapsec(['get', `${base}/inspect`, '--hop-limit', '256']), /--hop-limit/);
  });

  test('--local ADDR:PORT sends from that address and port', async () => {
    const probe = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
    const port = probe.address().port;
    await probe.close();
    const before = seen.length;
    const r = await coapsec(['get', `${base}/inspect`, '--local', `127.0.0.1:${port}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(seen[before]!.peer, `127.0.0.1:${port}`);
    assertUsageError(await coapsec(['get', `${base}/inspect`, '--local', '127.0.0.1:70000']), /--local/);
  });

  test('--repeat 3 sends three requests and prints three responses', async () => {
    const before = seen.length;
    const r = await coapsec(['get', `${base}/inspect`, '--repeat', '3', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(seen.length - before, 3);
    assert.equal(r.stdout.trim().split('\n').length, 3);
    assertUsageError(await coapsec(['get', `${base}/inspect`, '--repeat', '0']), /--repeat/);
  });
});

describe('ping, output, version, help', { concurrency: 4 }, () => {
  test('coapsec ping URI: an empty CON answered by RST, exit 0; nothing there: exit 3', async () => {
    const r = await coapsec(['ping', base]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^pong from coap:\/\/127\.0\.0\.1:\d+ in [\d.]+ ms\n$/);
    const silent = await coapsec(['ping', 'coap://127.0.0.1:9/', '--timeout', '0.5']);
    assert.equal(silent.code, 3, silent.stderr);
    assertUsageError(await coapsec(['ping']), /URI/);
  });

  test('-o FILE writes the payload to FILE, nothing on stdout', async () => {
    const file = join(tmp, 'large.txt');
    const r = await coapsec(['get', `${base}/large`, '-o', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(readFileSync(file).length, 8192);
    assertUsageError(await coapsec(['get', `${base}/large`, '-o', join(tmp, 'no', 'such', 'dir')]), /-o: cannot open/);
  });

  test('--pretty: JSON indented, CBOR in diagnostic notation, link-format one link per line; --raw and a pipe: the bytes', async () => {
    const json = await coapsec(['get', `${base}/json`, '--pretty']);
    assert.equal(json.stdout, '{\n  "a": 1,\n  "b": [\n    2,\n    3\n  ]\n}\n');
    assert.equal((await coapsec(['get', `${base}/json`])).stdout, '{"a":1,"b":[2,3]}', 'not a terminal: raw');
    const cbor = await coapsec(['get', `${base}/cbor`, '--pretty']);
    assert.match(cbor.stdout, /"a": 1,\n\s+"b": h'cafe'/);
    const links = await coapsec(['get', `${base}/.well-known/core`, '--pretty']);
    assert.ok(links.stdout.split('\n').length > 3, links.stdout);
    assert.match(links.stdout, /^<\/[^\n]*,\n<\//);
    const raw = await coapsec(['get', `${base}/cbor`, '--raw']);
    assert.deepEqual(raw.stdoutBytes, Buffer.from(encode({ a: 1, b: new Uint8Array([0xca, 0xfe]) })));
    assertUsageError(await coapsec(['get', `${base}/cbor`, '--raw', '--pretty']), /either --pretty or --raw/);
  });

  test('--json: one "payload" field (base64 marked as such) and "decoded" for JSON and CBOR', async () => {
    const json = JSON.parse((await coapsec(['get', `${base}/json`, '--json'])).stdout) as Record<string, unknown>;
    assert.equal(json['payload'], '{"a":1,"b":[2,3]}');
    assert.deepEqual(json['decoded'], { a: 1, b: [2, 3] });
    const cbor = JSON.parse((await coapsec(['get', `${base}/cbor`, '--json'])).stdout) as Record<string, unknown>;
    assert.equal(cbor['payloadEncoding'], 'base64');
    assert.deepEqual(Buffer.from(String(cbor['payload']), 'base64'), Buffer.from(encode({ a: 1, b: new Uint8Array([0xca, 0xfe]) })));
    assert.deepEqual(cbor['decoded'], { a: 1, b: { bytes: 'cafe' } });
    assert.equal(cbor['diagnostic'], `{"a": 1, "b": h'cafe'}`);
    assert.equal('payloadBase64' in cbor, false, 'one field name for the payload');
    const text = JSON.parse((await coapsec(['get', `${base}/hello`, '--json'])).stdout) as Record<string, unknown>;
    assert.equal(text['payload'], 'Hello from coapsec');
    assert.equal('decoded' in text, false);
  });

  test('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await coapsec([flag]);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `coapsec ${version}\n`);
    }
  });

  test('per-command --help lists only that command\'s options', async () => {
    const get = (await coapsec(['get', '--help'])).stdout;
    for (const own of ['--option', '--token', '--hop-limit', '--local', '--repeat', '--output', '--pretty', '--raw', '--psk', '--credentials']) assert.ok(get.includes(own), own);
    for (const foreign of ['--trust-anchor', '--acl', '--ta-window-file', '--dir', '--proxy-name', '--log-format', '--count']) assert.ok(!get.includes(foreign), `get --help lists ${foreign}`);
    const serve = (await coapsec(['serve', '--help'])).stdout;
    for (const own of ['--proxy-name', '--log-format', '--trust-anchor', '--dir']) assert.ok(serve.includes(own), own);
    for (const foreign of ['--ta-credential', '--token', '--payload', '--repeat']) assert.ok(!serve.includes(foreign), `serve --help lists ${foreign}`);
    const ping = (await coapsec(['ping', '--help'])).stdout;
    assert.match(ping, /^usage: coapsec ping URI/);
    const credentials = (await coapsec(['credentials', '--help'])).stdout;
    assert.match(credentials, /^usage: coapsec credentials new --peer NAME/);
  });
});

describe('serve --proxy-name', () => {
  test('a Proxy-Uri naming the server is served; another name gets 5.05', async () => {
    const serve = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--proxy-name', 'origin.example'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
    try {
      const at = `coap://127.0.0.1:${serve.port}`;
      const own = await coapsec(['get', at, '-O', 'Proxy-Uri,coap://origin.example/hello']);
      assert.equal(own.code, 0, own.stderr);
      assert.equal(own.stdout, 'Hello from coapsec');
      const other = await coapsec(['get', at, '-O', 'Proxy-Uri,coap://elsewhere.example/hello']);
      assert.equal(other.code, 5, other.stderr);
    } finally {
      await serve.stop();
    }
  });

  test('a forward proxy with --next-hop ends its chain at a server named by --proxy-name', async () => {
    const origin = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--proxy-name', 'origin.example'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
    const proxy = await startDaemon(['proxy', '--bind', '127.0.0.1:0', '--forward', '--next-hop', `coap://127.0.0.1:${origin.port}`], /proxy on coap:\/\/127\.0\.0\.1:(\d+)/);
    try {
      const r = await coapsec(['get', 'coap://origin.example/hello', '--proxy', `coap://127.0.0.1:${proxy.port}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'Hello from coapsec');
    } finally {
      await proxy.stop();
      await origin.stop();
    }
  });
});

test('the block-wise progress bar: only on a terminal, only once a transfer has taken a second', () => {
  const written: string[] = [];
  const stream = (isTTY: boolean): NodeJS.WriteStream => ({ isTTY, write: (text: string) => written.push(text) }) as unknown as NodeJS.WriteStream;
  const quick = progressBar(stream(true));
  quick.update(512, 8192);
  quick.done();
  assert.deepEqual(written, [], 'nothing within the first second');
  const piped = progressBar(stream(false), 0);
  piped.update(512, 8192);
  piped.done();
  assert.deepEqual(written, [], 'nothing when stderr is not a terminal');
  const slow = progressBar(stream(true), 0);
  slow.update(4096, 8192);
  slow.done();
  assert.match(written[0]!, /^\r\[#{15} {15}\] 4096\/8192 bytes/);
  assert.equal(written.at(-1), '\r\x1b[K', 'the line is cleared at the end');
});
