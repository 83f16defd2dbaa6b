/**
 * `coapsec observe` takes the client flags of get/post/...: -O, --token, --hop-limit, --local and
 * the shared output (-o FILE, --json, --pretty/--raw), each notification printed as get prints a response.
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
import { CoapServer } from '../src/server/server.js';
import { assertUsageError, coapsec, killChildren } from './support/cli-harness.js';

let server: CoapServer;
let base: string;
let tmp: string;
let tick = 0;
let ticker: NodeJS.Timeout;
/** What /inspect saw of each registration and notification, in order. */
const seen: Array<{ token: string; options: Map<number, string>; peer: string }> = [];

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'coapsec-observe-flags-'));
  server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  server.resource(
    '/inspect',
    {
      GET: (req) => {
        seen.push({ token: Buffer.from(req.message.token).toString('hex'), options: new Map(req.options.map((o) => [o.number, Buffer.from(o.value).toString('hex')])), peer: req.context.peerKey });
        return { code: ResponseCode.Content, payload: `seen ${seen.length}` };
      },
    },
    { observable: true },
  );
  server.resource('/json', { GET: () => ({ code: ResponseCode.Content, contentFormat: ContentFormat.Json, payload: JSON.stringify({ tick, b: [2, 3] }) }) }, { observable: true });
  server.resource('/cbor', { GET: () => ({ code: ResponseCode.Content, contentFormat: ContentFormat.Cbor, payload: encode({ tick, b: new Uint8Array([0xca, 0xfe]) }) }) }, { observable: true });
  // Notifications every 100 ms; every test's --count bounds how many it waits for.
  ticker = setInterval(() => {
    tick++;
    for (const path of ['/inspect', '/json', '/cbor']) server.changed(path);
  }, 100);
  base = `coap://127.0.0.1:${server.address().port}`;
});

after(async () => {
  clearInterval(ticker);
  killChildren();
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('observe output', { concurrency: 3 }, () => {
  test('-o FILE gets every notification, nothing on stdout', async () => {
    const file = join(tmp, 'notifications.txt');
    const r = await coapsec(['observe', `${base}/json`, '--count', '3', '-o', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 3, readFileSync(file, 'utf8'));
    for (const line of lines) assert.match(line, /^\{"tick":\d+,"b":\[2,3\]\}$/);
    assertUsageError(await coapsec(['observe', `${base}/json`, '-o', join(tmp, 'no', 'such', 'dir')]), /-o: cannot open/);
  });

  test('--json (here with -o FILE): one object per notification with the fields of get --json ("decoded" for JSON and CBOR)', async () => {
    const file = join(tmp, 'notifications.json');
    const r = await coapsec(['observe', `${base}/cbor`, '--count', '2', '--json', '-o', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    const objects = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(objects.length, 2);
    for (const o of objects) {
      assert.equal(o['payloadEncoding'], 'base64');
      assert.equal((o['decoded'] as { b: unknown }).b !== undefined, true, JSON.stringify(o));
      assert.deepEqual((o['decoded'] as { b: unknown }).b, { bytes: 'cafe' });
      assert.match(String(o['diagnostic']), /"b": h'cafe'/);
      assert.equal('payloadBase64' in o, false);
    }
    const get = JSON.parse((await coapsec(['get', `${base}/cbor`, '--json'])).stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(objects[0]!).filter((k) => k !== 'observe').sort(), Object.keys(get).filter((k) => k !== 'observe').sort(), 'the same fields as get --json');
  });

  test('--pretty: JSON indented and CBOR in diagnostic notation per notification; --raw --pretty is a usage error', async () => {
    const json = await coapsec(['observe', `${base}/json`, '--count', '2', '--pretty']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stdout.match(/\{\n {2}"tick": \d+,\n {2}"b": \[\n {4}2,\n {4}3\n {2}\]\n\}\n/g)?.length, 2, json.stdout);
    const cbor = await coapsec(['observe', `${base}/cbor`, '--count', '2', '--pretty']);
    assert.equal(cbor.code, 0, cbor.stderr);
    assert.equal(cbor.stdout.match(/"b": h'cafe'/g)?.length, 2, cbor.stdout);
    assertUsageError(await coapsec(['observe', `${base}/cbor`, '--raw', '--pretty']), /either --pretty or --raw/);
  });
});

describe('observe request flags', () => {
  test('-O and --hop-limit are in the registration', async () => {
    const before = seen.length;
    const r = await coapsec(['observe', `${base}/inspect`, '--count', '1', '-O', 'Accept,0', '-O', 'ETag,0xc0ffee', '--hop-limit', '9']);
    assert.equal(r.code, 0, r.stderr);
    const options = seen[before]!.options;
    assert.equal(options.get(OptionNumber.Accept), '', 'Accept 0 (text/plain) as -O');
    assert.equal(options.get(OptionNumber.ETag), 'c0ffee');
    assert.equal(decodeUint(Buffer.from(options.get(OptionNumber.HopLimit)!, 'hex')), 9);
    assertUsageError(await coapsec(['observe', `${base}/inspect`, '-O', 'No-Such-Option,1']), /no option number .* or known option name/);
    assertUsageError(await coapsec(['observe', `${base}/inspect`, '--hop-limit', '0']), /--hop-limit/);
  });

  test('--token HEX is the registration token, and notifications on it arrive', async () => {
    const before = seen.length;
    const r = await coapsec(['observe', `${base}/inspect`, '--count', '2', '--token', '0xa1b2c3']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, 2, r.stdout);
    assert.equal(seen[before]!.token, 'a1b2c3');
    assertUsageError(await coapsec(['observe', `${base}/inspect`, '--token', '00'.repeat(9)]), /--token: at most 8 bytes/);
  });

  test('--local ADDR:PORT registers from that address and port', async () => {
    const probe = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
    const port = probe.address().port;
    await probe.close();
    const before = seen.length;
    const r = await coapsec(['observe', `${base}/inspect`, '--count', '1', '--local', `127.0.0.1:${port}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(seen[before]!.peer, `127.0.0.1:${port}`);
    assertUsageError(await coapsec(['observe', `${base}/inspect`, '--local', '127.0.0.1:70000']), /--local/);
  });

  test('observe --help lists the shared client, output and TLS flags', async () => {
    const help = (await coapsec(['observe', '--help'])).stdout;
    for (const own of ['--option', '--token', '--hop-limit', '--local', '--output', '--pretty', '--raw', '--json', '--count', '--duration', '--cert', '--ca', '--psk', 'coaps+tcp://']) assert.ok(help.includes(own), own);
    assert.ok((await coapsec(['get', '--help'])).stdout.includes('coaps+tcp://'), 'get --help names TLS too');
  });
});
