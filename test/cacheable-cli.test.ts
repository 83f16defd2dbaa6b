/**
 * The CLI of cacheable OSCORE: `coapsec group deterministic` names the group's Deterministic Client
 * (draft-ietf-core-cacheable-oscore §3.4.1) and member files carry it; `coapsec get
 * --deterministic --group FILE --proxy URI` sends a Deterministic Request through a caching
 * forward proxy (UDP on 127.0.0.1), and two members get the one cached response, each verifying it.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResponseCode } from '../src/coap/codes.js';
import { CoapClient } from '../src/client/client.js';
import { GroupContextStore } from '../src/group-oscore/context.js';
import { GroupManager, contextFromMemberFile, type GroupMemberFile } from '../src/group-oscore/manager.js';
import { ResponseCache } from '../src/proxy/cache.js';
import { ForwardProxy } from '../src/proxy/forward-proxy.js';
import { CoapServer } from '../src/server/server.js';
import { runCli } from './support/group-cli.js';
import { killChildren, startDaemon } from './support/cli-harness.js';

describe('coapsec group deterministic, get --deterministic', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coapsec-cacheable-cli-'));
  const state = join(dir, 'fw.json');
  after(() => {
    killChildren();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the Group Manager names the Deterministic Client once; its Sender ID is never a member\'s and survives rekeying', async () => {
    assert.equal((await runCli(['group', 'create', state, '--name', 'fw'])).code, 0);
    const named = await runCli(['group', 'deterministic', state]);
    assert.equal(named.code, 0, named.stderr);
    assert.equal(named.stdout, 'fw: Deterministic Client with Sender ID 00, hash SHA-256; issue the members\' files again\n');
    const again = await runCli(['group', 'deterministic', state]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already has a Deterministic Client \(Sender ID 00\)/);
    for (const name of ['origin', 'c1', 'c2']) assert.equal((await runCli(['group', 'add', state, name])).code, 0);
    assert.equal((await runCli(['group', 'rekey', state])).code, 0);
    assert.equal((await runCli(['group', 'add', state, 'c3'])).code, 0);
    const shown = await runCli(['group', 'show', state]);
    assert.match(shown.stdout, /\n {2}\(Deterministic Client\): Sender ID 00\n {2}origin: Sender ID 01\n {2}c1: Sender ID 02\n {2}c2: Sender ID 03\n {2}c3: Sender ID 04\n$/);
    for (const name of ['origin', 'c1', 'c2', 'c3']) {
      const issued = await runCli(['group', 'issue', state, name, '-o', join(dir, `${name}.json`)]);
      assert.equal(issued.code, 0, issued.stderr);
      const file = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as GroupMemberFile;
      assert.deepEqual(file.deterministicClient, { senderId: '00', hash: -16 });
    }
  });

  test('get --deterministic through a caching proxy: two members, one origin request, both verified', async () => {
    const originFile = JSON.parse(readFileSync(join(dir, 'origin.json'), 'utf8')) as GroupMemberFile;
    const contexts = new GroupContextStore();
    contexts.install('fw', contextFromMemberFile(originFile));
    const origin = await CoapServer.listen({ host: '127.0.0.1', port: 0, group: { contexts } });
    let served = 0;
    origin.resource('/fw', { GET: () => ({ code: ResponseCode.Content, maxAge: 30, payload: `firmware #${++served}` }) }, { deterministic: true });
    const proxyServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
    const upstream = new CoapClient();
    const cache = new ResponseCache({ maxBytes: 1 << 20, now: () => performance.now() });
    const proxy = new ForwardProxy(proxyServer, { upstream, allowDestinations: ['127.0.0.1'], cache });
    try {
      const uri = `coap://127.0.0.1:${origin.address().port}/fw`;
      const via = `coap://127.0.0.1:${proxyServer.address().port}`;
      for (const name of ['c1', 'c2']) {
        const got = await runCli(['get', uri, '--deterministic', '--group', join(dir, `${name}.json`), '--proxy', via, '--server-id', originFile.senderId]);
        assert.equal(got.code, 0, got.stderr);
        assert.equal(got.stdout, 'firmware #1', `${name} printed the verified payload`);
      }
      assert.equal(served, 1, 'the origin served one request');
      assert.equal(proxy.stats.cacheHits, 1, 'the second member was answered from the cache');
      // Another server's Sender ID: the (cached) response is refused, exit code 6.
      const wrong = await runCli(['get', uri, '--deterministic', '--group', join(dir, 'c3.json'), '--proxy', via, '--server-id', '7f']);
      assert.equal(wrong.code, 6, wrong.stderr);
      assert.match(wrong.stderr, /security failure: .*another server/);
    } finally {
      await upstream.close();
      await proxyServer.close();
      await origin.close();
    }
  });

  test('serve --deterministic PATH serves Deterministic Requests on that resource alone; get --deterministic reads it', async () => {
    const originFile = JSON.parse(readFileSync(join(dir, 'origin.json'), 'utf8')) as GroupMemberFile;
    process.env.COAPSEC_STATE_DIR = join(dir, 'serve-state'); // the origin's Sender Sequence Numbers
    const server = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--group', join(dir, 'origin.json'), '--deterministic', '/hello', '--deterministic', '/valve'], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
    try {
      assert.match(server.stderr(), /note: \/valve also accepts PUT; Deterministic Requests reach only its GET and FETCH/);
      const base = `coap://127.0.0.1:${server.port}`;
      const hello = await runCli(['get', `${base}/hello`, '--deterministic', '--group', join(dir, 'c1.json'), '--server-id', originFile.senderId]);
      assert.equal(hello.code, 0, hello.stderr);
      assert.equal(hello.stdout, 'Hello from coapsec', 'the verified payload');
      // /time is not marked: the origin refuses it with a protected 4.01, which the member verifies.
      const time = await runCli(['get', `${base}/time`, '--deterministic', '--group', join(dir, 'c2.json'), '--server-id', originFile.senderId]);
      assert.notEqual(time.code, 0);
      assert.match(time.stderr + time.stdout, /4\.01.*Deterministic Requests not served here/s);
    } finally {
      await server.stop();
    }
  });

  test('bad input is a usage error (exit 2)', async () => {
    const bare = GroupManager.create({ name: 'bare' });
    bare.addMember('m');
    writeFileSync(join(dir, 'bare.json'), JSON.stringify(bare.memberFile('m')));
    const cases: Array<[string[], RegExp]> = [
      [['get', 'coap://127.0.0.1:9/fw', '--deterministic'], /needs --group FILE/],
      [['post', 'coap://127.0.0.1:9/fw', '--deterministic', '--group', join(dir, 'c1.json')], /for get and fetch/],
      [['get', 'coap://127.0.0.1:9/fw', '--deterministic', '--group', join(dir, 'bare.json')], /no Deterministic Client; name one with "coapsec group deterministic STATE"/],
      [['get', 'coap://127.0.0.1:9/fw', '--deterministic', '--group', join(dir, 'c1.json'), '--server-id', 'xyz'], /--server-id needs a Sender ID in hex/],
      [['get', 'coap://127.0.0.1:9/fw', '--deterministic', '--group', join(dir, 'c1.json'), '--proxy', 'nonsense'], /bad --proxy "nonsense"/],
      [['get', 'coap://127.0.0.1:9/fw', '--deterministic', '--group', join(dir, 'missing.json')], /missing\.json/],
      [['serve', '--bind', '127.0.0.1:0', '--deterministic', '/hello'], /--deterministic needs --group FILE/],
      [['serve', '--bind', '127.0.0.1:0', '--group', join(dir, 'origin.json'), '--deterministic', 'hello'], /needs a resource path such as \/hello, got "hello"/],
      [['serve', '--bind', '127.0.0.1:0', '--group', join(dir, 'origin.json'), '--deterministic', '/nothing'], /--deterministic \/nothing: no resource at that path here/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
    }
  });
});
