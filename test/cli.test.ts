/**
 * The coapsec command line as a user runs it: `node bin/coapsec ...` as a child process against an
 * in-process CoapServer with the demo resources on 127.0.0.1. Checks exit codes, what goes to
 * stdout and stderr, and that usage errors are one line without a stack trace.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { addDemoResources, largeText } from '../src/demo/resources.js';
import { CoapServer } from '../src/server/server.js';
import { BIN, ROOT, RUN_TIMEOUT, assertUsageError, children, coapsec, killChildren } from './support/cli-harness.js';

let server: CoapServer;
let base: string;
let tmp: string;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'coapsec-cli-'));
  mkdirSync(join(tmp, 'public'));
  writeFileSync(join(tmp, 'public', 'readme.txt'), 'a served file');
  server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  addDemoResources(server, { dir: join(tmp, 'public') });
  server.resource('/boom', {
    GET: () => {
      throw new Error('handler failed');
    },
  });
  server.resource('/binary', { GET: () => ({ code: ResponseCode.Content, contentFormat: ContentFormat.OctetStream, payload: Uint8Array.of(0, 255, 1, 10) }) });
  base = `coap://127.0.0.1:${server.address().port}`;
});

after(async () => {
  killChildren();
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
});

// Each test spawns a Node.js process (~200 ms); independent ones run a few at a time.
describe('requests', { concurrency: 4 }, () => {
  test('get /hello: exit 0, the payload on stdout, nothing on stderr', async () => {
    const r = await coapsec(['get', `${base}/hello`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Hello from coapsec', 'no newline added when stdout is not a terminal');
    assert.equal(r.stderr, '');
  });

  test('get /nothing: exit 4, "4.04 Not Found" on stderr', async () => {
    const r = await coapsec(['get', `${base}/nothing`]);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, '4.04 Not Found\n');
  });

  test('put /valve 42: exit 4, the 4.00 diagnostic on stdout', async () => {
    const r = await coapsec(['put', `${base}/valve`, '--payload', '42']);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stderr, '4.00 Bad Request\n');
    assert.match(r.stdout, /level must be an integer from 0 to 10, got "42"/);
  });

  test('put /valve 7 then get -v: code and options on stderr, payload on stdout', async () => {
    const put = await coapsec(['put', `${base}/valve`, '--payload', '7']);
    assert.equal(put.code, 0, put.stderr);
    assert.equal(put.stdout, '');
    const r = await coapsec(['get', `${base}/valve`, '-v']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '7');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines[0], '2.05 Content');
    assert.ok(lines.some((l) => /^ {2}Content-Format: 0\b/.test(l)), r.stderr);
    assert.ok(lines.includes('  Max-Age: 0'), r.stderr);
  });

  test('--verbose is the long form of -v', async () => {
    const r = await coapsec(['get', `${base}/nothing`, '--verbose']);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stderr, '4.04 Not Found\nprotection: none\n', 'the code once, not twice; then the protection (issue 16 item 1)');
  });

  test('--json: one parseable JSON object with code "2.05"', async () => {
    const r = await coapsec(['get', `${base}/config`, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const lines = r.stdout.split('\n');
    assert.equal(lines.length, 2, 'one line and its newline');
    assert.equal(lines[1], '');
    const json = JSON.parse(lines[0]!) as { code: string; status: string; options: Array<{ number: number; name: string; value: unknown }>; payload: string };
    assert.equal(json.code, '2.05');
    assert.equal(json.status, 'Content');
    assert.deepEqual(
      json.options.map((o) => o.name),
      ['ETag', 'Content-Format'],
    );
    assert.equal(json.options.find((o) => o.name === 'Content-Format')!.value, ContentFormat.Json);
    // Another test patches "interval" concurrently; "id" is read-only.
    assert.equal((JSON.parse(json.payload) as { id: string }).id, 'coapsec-demo');
  });

  test('--json on an error response still prints JSON and exits 4', async () => {
    const r = await coapsec(['delete', `${base}/hello`, '--json']);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal((JSON.parse(r.stdout) as { code: string }).code, '4.05');
  });

  test('--json with a binary payload: "payload" in base64, said by "payloadEncoding"; without --json, the raw bytes', async () => {
    const json = await coapsec(['get', `${base}/binary`, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as Record<string, unknown>;
    assert.equal(parsed['payload'], 'AP8BCg==');
    assert.equal(parsed['payloadEncoding'], 'base64');
    assert.equal(parsed['payloadBase64'], undefined, 'one field name for the payload');
    const raw = await coapsec(['get', `${base}/binary`]);
    assert.deepEqual([...raw.stdoutBytes], [0, 255, 1, 10]);
  });

  test('--payload-file sends the file; "-" reads stdin', async () => {
    const file = join(tmp, 'body.txt');
    writeFileSync(file, 'from a file\nwith two lines');
    const r = await coapsec(['post', `${base}/echo`, '--payload-file', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'from a file\nwith two lines');
    const stdin = await coapsec(['put', `${base}/echo`, '--payload-file', '-'], { input: 'from stdin' });
    assert.equal(stdin.code, 0, stdin.stderr);
    assert.equal(stdin.stdout, 'from stdin');
  });

  test('--content-format json on FETCH /config; without it 4.15', async () => {
    const r = await coapsec(['fetch', `${base}/config`, '--payload', '["unit"]', '--content-format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { unit: 'celsius' });
    const noFormat = await coapsec(['fetch', `${base}/config`, '--payload', '["unit"]']);
    assert.equal(noFormat.code, 4, noFormat.stderr);
    assert.equal(noFormat.stderr, '4.15 Unsupported Content-Format\n');
  });

  test('--content-format 52 on iPATCH and PATCH /config', async () => {
    const ipatch = await coapsec(['ipatch', `${base}/config`, '--payload', '{"interval":30}', '--content-format', '52', '-v']);
    assert.equal(ipatch.code, 0, ipatch.stderr);
    assert.match(ipatch.stderr, /^2\.04 Changed\n {2}ETag: 0x/);
    const conflict = await coapsec(['patch', `${base}/config`, '--payload', '{"id":"x"}', '--content-format', '52']);
    assert.equal(conflict.code, 4, conflict.stderr);
    assert.equal(conflict.stderr, '4.09 Conflict\n');
    const read = await coapsec(['get', `${base}/config`]);
    assert.equal((JSON.parse(read.stdout) as { interval: number }).interval, 30);
  });

  test('--accept json on a text resource: 4.06, exit 4', async () => {
    const r = await coapsec(['get', `${base}/hello`, '--accept', 'json']);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stderr, '4.06 Not Acceptable\n');
  });

  test('a 5.xx response: exit 5', async () => {
    const r = await coapsec(['get', `${base}/boom`]);
    assert.equal(r.code, 5, r.stderr);
    assert.equal(r.stderr, '5.00 Internal Server Error\n');
    assert.match(r.stdout, /handler failed/);
  });

  test('--non: a Non-confirmable request gets its answer', async () => {
    const r = await coapsec(['get', `${base}/hello`, '--non']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Hello from coapsec');
  });

  test('get /large: all 8192 bytes', async () => {
    const r = await coapsec(['get', `${base}/large`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdoutBytes.length, 8192);
  });

  test('get of a file served from --dir', async () => {
    const r = await coapsec(['get', `${base}/readme.txt`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'a served file');
  });

  test('method names are case-insensitive', async () => {
    const r = await coapsec(['GET', `${base}/hello`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Hello from coapsec');
  });
});

describe('no response', { concurrency: true }, () => {
  let silent: Socket;
  let silentPort: number;
  before(async () => {
    // A UDP socket that reads requests and never answers.
    silent = createSocket('udp4');
    silent.on('message', () => undefined);
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', () => resolve()));
    silentPort = silent.address().port;
  });
  after(() => {
    silent.close();
  });

  test('--non --timeout 1 against a silent port: exit 3 within a few seconds', async () => {
    const r = await coapsec(['get', `coap://127.0.0.1:${silentPort}/x`, '--non', '--timeout', '1']);
    assert.equal(r.code, 3, r.stderr);
    assert.ok(r.ms < 5000, `took ${r.ms.toFixed(0)} ms`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^coapsec: no response from 127\.0\.0\.1:\d+ within 1000 ms\n$/);
  });

  test(
    '--timeout 1 bounds a CON request too',
    async () => {
      const r = await coapsec(['get', `coap://127.0.0.1:${silentPort}/x`, '--timeout', '1'], { timeout: 4000 });
      assert.equal(r.code, 3, r.stderr);
    },
  );
});

describe('usage errors: exit 2, one line on stderr', { concurrency: 4 }, () => {
  test('attack-proxy (test tool): an unknown --attack or a missing --upstream is a usage error', async () => {
    assertUsageError(await coapsec(['attack-proxy', '--attack', 'bogus', '--upstream', '127.0.0.1:5683']), /--attack must be one of/);
    assertUsageError(await coapsec(['attack-proxy', '--attack', 'drop']), /--upstream needs HOST:PORT/);
  });
  test('an unknown flag', async () => {
    assertUsageError(await coapsec(['get', `${base}/hello`, '--bogus']), /--bogus/);
  });

  test('a flag without its value', async () => {
    assertUsageError(await coapsec(['get', `${base}/hello`, '--payload']), /--payload/);
  });

  for (const uri of ['http://x/', 'coap://[::1', 'coap://host/#frag', 'not a uri', 'coap://']) {
    test(`bad URI ${JSON.stringify(uri)}`, async () => {
      assertUsageError(await coapsec(['get', uri]), /URI/);
    });
  }

  test('no URI, and two URIs', async () => {
    assertUsageError(await coapsec(['get']), /URI/);
    assertUsageError(await coapsec(['get', `${base}/a`, `${base}/b`]), /unexpected argument/);
  });

  test('--payload with --payload-file', async () => {
    assertUsageError(await coapsec(['post', `${base}/echo`, '--payload', 'x', '--payload-file', '-']), /either/);
  });

  test('an unreadable --payload-file', async () => {
    assertUsageError(await coapsec(['post', `${base}/echo`, '--payload-file', join(tmp, 'no-such-file')]), /--payload-file/);
  });

  test('a bad --timeout and a bad --content-format', async () => {
    assertUsageError(await coapsec(['get', `${base}/hello`, '--timeout', '0']), /--timeout/);
    assertUsageError(await coapsec(['get', `${base}/hello`, '--timeout', 'soon']), /--timeout/);
    assertUsageError(await coapsec(['get', `${base}/hello`, '--content-format', 'no/such-type']), /--content-format/);
    assertUsageError(await coapsec(['get', `${base}/hello`, '--accept', '70000']), /--accept/);
  });

  test('an unknown command', async () => {
    assertUsageError(await coapsec(['frobnicate', `${base}/hello`]), /unknown command "frobnicate"/);
  });

  test('no command: the usage on stdout, exit 2', async () => {
    const r = await coapsec([]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stdout, /^coapsec/);
    assert.match(r.stdout, /usage: coapsec/);
  });

  test('serve --bind 127.0.0.1:99999', async () => {
    assertUsageError(await coapsec(['serve', '--bind', '127.0.0.1:99999']), /99999/);
  });

  test('serve --bind with garbage', async () => {
    assertUsageError(await coapsec(['serve', '--bind', '[::1']), /--bind/);
  });

  test('serve --dir /nonexistent', async () => {
    assertUsageError(await coapsec(['serve', '--bind', '127.0.0.1:0', '--dir', '/nonexistent']), /--dir/);
  });

  test('serve on a port already in use', async () => {
    assertUsageError(await coapsec(['serve', '--bind', `127.0.0.1:${server.address().port}`]), /EADDRINUSE/);
  });

  test('serve with a stray argument', async () => {
    assertUsageError(await coapsec(['serve', 'extra']), /unexpected argument/);
  });
});

/** Spawns `coapsec serve ARGS` and waits for its "serving on SCHEME://127.0.0.1:PORT" line (bounded by RUN_TIMEOUT). */
async function startServe(args: string[], scheme: 'coap' | 'coaps'): Promise<{ port: number; stdout: () => string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  let stdout = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  const announced = new RegExp(`^coapsec serving on ${scheme}://127\\.0\\.0\\.1:(\\d+)\\n`);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "serving on" line within ${RUN_TIMEOUT} ms: ${stderr}`)), RUN_TIMEOUT);
    child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
      const m = announced.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  /** SIGTERM, then the exit code (SIGKILL after 5 s). */
  const stop = async (): Promise<number | null> => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    const code = await exited;
    clearTimeout(timer);
    children.delete(child);
    return code;
  };
  return { port, stdout: () => stdout, stop };
}

describe('help, demo, serve', () => {
  test('--help: exit 0, usage on stdout', async () => {
    for (const flag of ['--help', '-h', 'help']) {
      const r = await coapsec([flag]);
      assert.equal(r.code, 0, flag);
      assert.equal(r.stderr, '');
      for (const part of ['usage: coapsec <get|post|put|delete|fetch|patch|ipatch> URI', 'usage: coapsec serve', 'usage: coapsec demo', 'exit codes:']) {
        assert.ok(r.stdout.includes(part), `${flag}: ${part}`);
      }
    }
  });

  test('COMMAND --help / -h: exit 0, that command\'s usage only, whatever else is on the line', async () => {
    const cases: Array<[string[], string]> = [
      [['serve', '--help'], 'usage: coapsec serve'],
      [['get', 'coap://127.0.0.1/x', '-h'], 'usage: coapsec <get|post|put|delete|fetch|patch|ipatch> URI'],
      [['proxy', '--help'], 'usage: coapsec proxy'],
      [['observe', '-h'], 'usage: coapsec observe'],
      [['demo', '--help'], 'usage: coapsec demo'],
    ];
    for (const [args, usage] of cases) {
      const r = await coapsec(args);
      assert.equal(r.code, 0, args.join(' '));
      assert.equal(r.stderr, '');
      assert.ok(r.stdout.startsWith(usage), `${args.join(' ')}: ${r.stdout.slice(0, 80)}`);
      assert.ok(!r.stdout.includes('exit codes:'), 'one command, not the whole manual');
    }
  });

  test('demo: exit 0, every exchange shown, no colour when not on a terminal', async () => {
    const r = await coapsec(['demo'], { timeout: 20_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /2\.05 Content/);
    for (const code of ['2.04 Changed', '4.00 Bad Request', '4.12 Precondition Failed', '4.09 Conflict', '4.05 Method Not Allowed', '4.04 Not Found']) {
      assert.ok(r.stdout.includes(code), code);
    }
    assert.match(r.stdout, /pong in [\d.]+ ms/);
    assert.doesNotMatch(r.stdout, /\x1b\[/);
    assert.doesNotMatch(r.stdout, /✗/);
  });

  test('serve --dtls-max-sessions / --dtls-stale-after: bad values and missing credentials are usage errors', async () => {
    const psk = ['--psk-identity', 'cli', '--psk', 'secret'];
    assertUsageError(await coapsec(['serve', '--bind', '127.0.0.1:0', ...psk, '--dtls-max-sessions', '0']), /--dtls-max-sessions/);
    assertUsageError(await coapsec(['serve', '--bind', '127.0.0.1:0', ...psk, '--dtls-max-sessions', '2.5']), /--dtls-max-sessions/);
    assertUsageError(await coapsec(['serve', '--bind', '127.0.0.1:0', ...psk, '--dtls-stale-after', '0']), /--dtls-stale-after/);
    assertUsageError(await coapsec(['serve', '--bind', '127.0.0.1:0', ...psk, '--dtls-stale-after', 'soon']), /--dtls-stale-after/);
    assertUsageError(await coapsec(['serve', '--bind', '127.0.0.1:0', '--dtls-max-sessions', '4']), /need DTLS credentials/);
  });

  test('serve --dtls-max-sessions 1: a second client is turned away while the first session is fresh, and gets the slot once it is stale', async () => {
    const { stop, port } = await startServe(['--bind', '127.0.0.1:0', '--psk-identity', 'cli', '--psk', 'secret', '--dtls-max-sessions', '1', '--dtls-stale-after', '0.3'], 'coaps');
    const psk = { psk: { identity: 'cli', key: 'secret' } };
    const a = new CoapClient({ dtls: psk });
    const b = new CoapClient({ dtls: psk });
    try {
      assert.equal((await a.get(`coaps://127.0.0.1:${port}/hello`, { timeout: 5000 })).text(), 'Hello from coapsec');
      const early = await b.get(`coaps://127.0.0.1:${port}/hello`, { timeout: 150 }).then(
        () => 'answered',
        (e: Error) => e.name,
      );
      assert.equal(early, 'TimeoutError', 'one session at most: the second client waits while the first is fresh');
      await new Promise((r) => setTimeout(r, 400));
      assert.equal((await b.get(`coaps://127.0.0.1:${port}/hello`, { timeout: 5000 })).text(), 'Hello from coapsec', 'after 0.3 s idle the slot is given to b');
    } finally {
      await a.close();
      await b.close();
    }
    assert.equal(await stop(), 0, 'SIGTERM ends serve with exit 0');
  });

  test('serve --bind 127.0.0.1:0 --dir: announces its port, answers, exits 0 on SIGTERM', async () => {
    const { stop, port, stdout } = await startServe(['--bind', '127.0.0.1:0', '--dir', join(tmp, 'public')], 'coap');
    assert.notEqual(port, 0, 'the real port, not 0');
    const client = new CoapClient();
    try {
      const hello = await client.get(`coap://127.0.0.1:${port}/hello`, { timeout: 5000 });
      assert.equal(hello.text(), 'Hello from coapsec');
      const file = await client.get(`coap://127.0.0.1:${port}/readme.txt`, { timeout: 5000 });
      assert.equal(file.text(), 'a served file');
    } finally {
      await client.close();
    }
    assert.equal(await stop(), 0, 'SIGTERM ends serve with exit 0');
    assert.equal(stdout(), '');
  });
});

test('a reader that closes stdout early (coapsec demo | head -1) ends the command without a stack trace', async () => {
  const child = spawn(process.execPath, [BIN, 'demo'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.once('data', () => child.stdout.destroy());
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  assert.equal(stderr, '', 'nothing on stderr');
  assert.equal(code, 0);
});

describe('block-wise and Observe from the command line', () => {
  test('get -b 64 /large reassembles 128 blocks into the exact 8 KiB', async () => {
    const r = await coapsec(['get', '-b', '64', `${base}/large`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, largeText());
    assert.equal(r.stderr, '', 'no progress bar when stderr is not a terminal');
  });

  test('post --payload-file of 20 KiB goes out block-wise and is echoed intact', async () => {
    const body = 'x'.repeat(10_000) + 'y'.repeat(10_480);
    const file = join(mkdtempSync(join(tmpdir(), 'coapsec-cli-')), 'body');
    writeFileSync(file, body);
    const r = await coapsec(['post', `${base}/echo`, '--payload-file', file, '--block-size', '256']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, body);
  });

  test('-v shows Block options as NUM/M/SIZE', async () => {
    const r = await coapsec(['post', '-v', '-b', '64', `${base}/echo`, '--payload', 'z'.repeat(200)]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^ {2}Block1: 3\/0\/64$/m, 'the final response acknowledges the fourth 64-byte block');
  });

  test('observe --count 2 prints two notifications of /time and exits 0', async () => {
    const r = await coapsec(['observe', `${base}/time`, '--count', '2'], { timeout: 8000 });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 2);
    for (const line of lines) assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  test('observe --json --duration 1.5 prints JSON notifications with Observe numbers', async () => {
    const r = await coapsec(['observe', `${base}/time`, '--json', '--duration', '1.5'], { timeout: 8000 });
    assert.equal(r.code, 0, r.stderr);
    const objects = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { code: string; options: Array<{ name: string }> });
    assert.ok(objects.length >= 1);
    assert.ok(objects.every((o) => o.code === '2.05' && o.options.some((x) => x.name === 'Observe')));
  });

  test('observing a resource that is not observable prints the response and says so', async () => {
    const r = await coapsec(['observe', `${base}/hello`]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'Hello from coapsec\n');
    assert.match(r.stderr, /did not accept the observation/);
  });

  for (const [args, pattern] of [
    [['get', '-b', '100', 'coap://127.0.0.1/x'], /--block-size must be/],
    [['observe', 'coap://127.0.0.1/x', '--count', '0'], /--count needs a positive whole number/],
    [['observe', 'coap://127.0.0.1/x', '--duration', 'soon'], /--duration needs a positive number/],
  ] as const) {
    test(`usage error: ${args.join(' ')}`, async () => {
      const r = await coapsec(args);
      assert.equal(r.code, 2);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.split('\n').filter(Boolean).length, 1);
    });
  }
});

describe('coapsec attack-proxy (test tool)', () => {
  test('modify-payload through attack-proxy: the unprotected client prints the altered payload', async () => {
    const upstream = base.replace('coap://', '');
    const child = spawn(process.execPath, [BIN, 'attack-proxy', '--attack', 'modify-payload', '--listen', '127.0.0.1:0', '--upstream', upstream], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    try {
      let err = '';
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`attack-proxy did not start: ${err}`)), 10_000);
        child.stderr!.on('data', (b: Buffer) => {
          err += b.toString();
          const m = /on 127\.0\.0\.1:(\d+)/.exec(err);
          if (m) {
            clearTimeout(timer);
            resolve(Number(m[1]));
          }
        });
      });
      const direct = await coapsec(['get', `${base}/hello`]);
      const attacked = await coapsec(['get', `coap://127.0.0.1:${port}/hello`]);
      assert.equal(direct.code, 0);
      assert.equal(attacked.code, 0, attacked.stderr);
      assert.equal(attacked.stdout.length, direct.stdout.length);
      assert.notEqual(attacked.stdout, direct.stdout, 'the payload was altered in transit and accepted (no protection)');
    } finally {
      child.kill('SIGKILL');
      children.delete(child);
    }
  });
});

describe('coapsec proxy: usage errors', () => {
  for (const [args, pattern] of [
    [['proxy'], /give --forward, --reverse PREFIX=URI or --http HOST:PORT/],
    [['proxy', '--reverse', 'nonsense'], /--reverse needs PREFIX=URI/],
    [['proxy', '--forward', '--cache-mb', 'lots'], /--cache-mb needs a size in MiB/],
    [['proxy', '--forward', '--next-hop', 'http://x/'], /bad URI/],
    [['proxy', '--forward', '--nstart', '0'], /--nstart needs a positive whole number/],
    [['get', 'coap://127.0.0.1/x', '--proxy', 'nope'], /bad URI/],
  ] as const) {
    test(args.join(' '), async () => {
      const r = await coapsec(args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.split('\n').filter(Boolean).length, 1);
    });
  }
});
