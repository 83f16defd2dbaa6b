/**
 * End to end from a page in headless Chromium to a device: the page (the bundled coapsec.js) →
 * coap+ws → `coapsec proxy --forward --ws` → UDP → `coapsec serve`, every request OSCORE-protected
 * by the page and verified by it: GET, an observation of 10 notifications, a PUT to the valve that
 * first needs a fresh Echo (RFC 9175), and 64 KiB each way block-wise. tshark on the loopback
 * interface, filtered to the proxy's WebSocket port and the server's UDP port, records both legs:
 * no plaintext on either. A page reload keeps the Partial IVs unique (Appendix B.1.1 in IndexedDB).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { launchChromium, servePages, type HeadlessChromium } from './support/chromium.js';
import { ROOT, coapsec, killChildren, startDaemon, type Daemon } from './support/cli-harness.js';

const { bundleBrowser } = (await import(pathToFileURL(join(ROOT, 'scripts', 'build-browser.mjs')).href)) as typeof import('../scripts/build-browser.mjs');

/** The 64 KiB body: a text whose every 16-byte line is distinct, so any plaintext fragment is findable. */
const BODY_LINES = 4096;
const line = (i: number): string => `coapsec-row${String(i).padStart(4, '0')}\n`;

interface PageRun {
  partialIvs: number[];
  hello?: [string, string];
  notifications?: Array<{ text: string; partialIv: number | null }>;
  valve?: { status: string; requests: number; level: string };
  echo?: { status: string; length: number; same: boolean };
  error?: string;
}

let work: string;
let server: Daemon;
let proxy: Daemon;
let wsPort: number;
let site: Awaited<ReturnType<typeof servePages>>;
let browser: HeadlessChromium;
let credentials: Record<string, string>;
let capture: ChildProcess | undefined;
let capturePath: string;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'coapsec-browser-e2e-'));
  process.env.COAPSEC_STATE_DIR = join(work, 'state');
  const made = await coapsec(['credentials', 'new', '--peer', 'page', '--out-dir', join(work, 'creds')]);
  assert.equal(made.code, 0, made.stderr);
  const client = JSON.parse(readFileSync(join(work, 'creds', 'client.json'), 'utf8')) as { oscore: Array<{ context: Record<string, string> }> };
  credentials = client.oscore[0]!.context;
  server = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--credentials', join(work, 'creds', 'server.json')], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  const bundle = await bundleBrowser();
  site = await servePages({
    '/': { type: 'text/html', body: '<!doctype html><meta charset="utf-8"><title>coapsec end to end</title>' },
    '/coapsec.js': { type: 'text/javascript', body: bundle.text },
  });
  // The page's origin is another port than the proxy's: it must be on the proxy's --ws-origin list.
  proxy = await startDaemon(['proxy', '--forward', '--bind', '127.0.0.1:0', '--ws', '0', '--ws-origin', site.origin, '--allow-destination', '127.0.0.1'], /proxy on coap:\/\/127\.0\.0\.1:(\d+)/);
  wsPort = Number((await proxy.waitFor(/proxy on coap\+ws:\/\/127\.0\.0\.1:(\d+) \(forward\)/))[1]);
  browser = await launchChromium();
  await browser.page.goto(`${site.origin}/`);
});

after(async () => {
  capture?.kill('SIGKILL');
  await browser?.close();
  await site?.close();
  await proxy?.stop();
  await server?.stop();
  killChildren();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** tshark on lo for both legs; resolves once it captures. */
async function startCapture(ports: number[]): Promise<void> {
  capturePath = join(work, 'legs.pcap');
  const filter = ports.map((p) => `port ${p}`).join(' or ');
  capture = spawn('tshark', ['-i', 'lo', '-f', filter, '-w', capturePath, '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('tshark did not start capturing within 15 s')), 15_000);
    let text = '';
    capture!.stderr!.on('data', (b: Buffer) => {
      text += b.toString();
      if (/Capturing on/.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
    capture!.once('exit', (code) => reject(new Error(`tshark exited with ${code}: ${text}`)));
  });
  // tshark says "Capturing on" a moment before its capture process sees packets.
  await new Promise((r) => setTimeout(r, 1500));
}

async function stopCapture(): Promise<Buffer> {
  const exited = new Promise((resolve) => capture!.once('exit', resolve));
  // Let the last frames reach the capture file before stopping it.
  await new Promise((r) => setTimeout(r, 500));
  capture!.kill('SIGINT');
  await exited;
  capture = undefined;
  return readFileSync(capturePath);
}

function runPage(full: boolean, plain = false): Promise<PageRun> {
  return browser.page.evaluate(
    async ({ wsPort, origin, credentials, full, plain, lines }) => {
      const coapsec = await import('/coapsec.js' as string);
      const run: PageRun = { partialIvs: [] };
      const oscore = plain ? undefined : await coapsec.openOscore(credentials, { reserve: 16 });
      const client = new coapsec.BrowserCoapClient({ server: `coap+ws://127.0.0.1:${wsPort}`, origin, ...(oscore ? { oscore } : {}), requestTimeout: 20_000 });
      client.onSend = (_wire: unknown, partialIv: number | undefined) => {
        if (partialIv !== undefined) run.partialIvs.push(partialIv);
      };
      try {
        const hello = await client.get('/hello');
        run.hello = [hello.status, hello.text];
        if (full) {
          run.notifications = [];
          for await (const n of client.observe('/time', { count: 11, lifetime: 30_000 })) run.notifications.push({ text: n.text, partialIv: n.partialIv ?? null });
          const before = run.partialIvs.length;
          const put = await client.put('/valve', '7', { contentFormat: 0 });
          const requests = run.partialIvs.length - before;
          const level = await client.get('/valve');
          run.valve = { status: put.status, requests, level: level.text };
          let text = '';
          for (let i = 0; i < lines; i++) text += `coapsec-row${String(i).padStart(4, '0')}\n`;
          const echoed = await client.put('/echo', text, { contentFormat: 0 });
          run.echo = { status: echoed.status, length: echoed.payload.length, same: echoed.text === text };
        }
      } catch (error) {
        run.error = String((error as Error).stack ?? error);
      } finally {
        await client.close();
      }
      return run;
    },
    { wsPort, origin: `coap://127.0.0.1:${server.port}`, credentials, full, plain, lines: BODY_LINES },
  );
}

test('page → WebSocket → coapsec proxy → UDP → coapsec serve, OSCORE end to end: GET, 10 notifications, PUT with Echo, 64 KiB block-wise; no plaintext on either leg', { timeout: 120_000 }, async () => {
  await startCapture([wsPort, server.port]);
  const run = await runPage(true);
  const captured = await stopCapture();
  assert.equal(run.error, undefined, run.error);
  assert.deepEqual(run.hello, ['2.05 Content', 'Hello from coapsec']);
  // The first response and 10 notifications, each verified, in growing Partial IV order (§7.4.1).
  assert.equal(run.notifications!.length, 11);
  const ivs = run.notifications!.slice(1).map((n) => n.partialIv!);
  for (let i = 1; i < ivs.length; i++) assert.ok(ivs[i]! > ivs[i - 1]!, `notification Partial IVs ${ivs.join(',')}`);
  for (const n of run.notifications!) assert.match(n.text, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  // The valve asked for a fresh Echo first: the PUT went out twice, and acted once.
  assert.deepEqual(run.valve, { status: '2.04 Changed', requests: 2, level: '7' });
  assert.deepEqual(run.echo, { status: '2.04 Changed', length: BODY_LINES * 16, same: true });
  assert.equal(new Set(run.partialIvs).size, run.partialIvs.length, 'a Partial IV was used twice');

  // Both legs were captured (64 KiB went each way over each), and none of it is readable.
  assert.ok(statSync(capturePath).size > 4 * 65536, `the capture holds ${captured.length} bytes`);
  for (const plaintext of ['hello', 'Hello from coapsec', line(1234), line(4095), '\x0bvalve', 'demo.time']) {
    assert.equal(captured.indexOf(plaintext), -1, `${JSON.stringify(plaintext)} is readable on the wire`);
  }
  // The time values the page decrypted never crossed either leg in the clear.
  for (const n of run.notifications!) assert.equal(captured.indexOf(n.text), -1, `notification ${n.text} readable on the wire`);
});

test('a page reload keeps the Partial IVs unique: the reloaded page starts above every number used before', { timeout: 60_000 }, async () => {
  const first = await runPage(false);
  assert.equal(first.error, undefined, first.error);
  await browser.page.reload();
  const second = await runPage(false);
  assert.equal(second.error, undefined, second.error);
  assert.deepEqual(second.hello, ['2.05 Content', 'Hello from coapsec']);
  const all = [...first.partialIvs, ...second.partialIvs];
  assert.equal(new Set(all).size, all.length, `Partial IVs reused across the reload: ${all.join(',')}`);
  assert.ok(Math.min(...second.partialIvs) > Math.max(...first.partialIvs), `after the reload: ${second.partialIvs.join(',')}; before: ${first.partialIvs.join(',')}`);
});

test('the capture would show plaintext: the same GET without OSCORE is readable on both legs', { timeout: 60_000 }, async () => {
  await startCapture([wsPort, server.port]);
  const run = await runPage(false, true);
  const captured = await stopCapture();
  assert.equal(run.error, undefined, run.error);
  // The request path on the UDP leg (the WebSocket leg's client frames are masked, RFC 6455 §5.3),
  // and the answer on both.
  assert.notEqual(captured.indexOf('hello'), -1, `the plain Uri-Path is not in the capture (${captured.length} bytes, answer at ${captured.indexOf('Hello from')}, hello ${JSON.stringify(run.hello)})`);
  const answer = Buffer.from('Hello from coapsec');
  let seen = 0;
  for (let at = captured.indexOf(answer); at >= 0; at = captured.indexOf(answer, at + 1)) seen++;
  assert.ok(seen >= 2, `the plain answer appears ${seen} times; once per leg expected`);
});
