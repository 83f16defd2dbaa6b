/**
 * EDHOC from a page in headless Chromium to a device: the page (the bundled coapsec.js) runs EDHOC
 * as Initiator (method 3, suite 2, P-256 CCS credentials by kid, made by `coapsec keygen`) through
 * coap+ws → `coapsec proxy --forward --ws` → UDP → `coapsec serve --credentials` with an EDHOC
 * section, then GETs with the OSCORE context of RFC 9528 App. A.1: once with message_3 in the
 * first OSCORE request (RFC 9668 combined request), once with message_3 POSTed on its own. Every
 * WebSocket message the page sent or received is recorded (what the proxy relayed): the decrypted
 * text is in none of them. A page the device does not trust gets the device's EDHOC error. The
 * demo page (web/, served by the proxy's --web) in EDHOC mode does the same from its fragment; a
 * screenshot of it is saved under test-artifacts/ (gitignored).
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { coseKeyFromKeyObject, toHex } from '../src/cose/index.js';
import { launchChromium, servePages, type HeadlessChromium } from './support/chromium.js';
import { ROOT, coapsec, killChildren, startDaemon, type Daemon } from './support/cli-harness.js';

const { bundleBrowser } = (await import(pathToFileURL(join(ROOT, 'scripts', 'build-browser.mjs')).href)) as typeof import('../scripts/build-browser.mjs');

interface Identity {
  ccs: string;
  d: string;
}

interface EdhocRun {
  text?: string;
  status?: string;
  peerCred?: string;
  senderId?: string;
  recipientId?: string;
  frames?: string[];
  error?: string;
}

let work: string;
let server: Daemon;
let proxy: Daemon;
let wsPort: number;
let site: Awaited<ReturnType<typeof servePages>>;
let browser: HeadlessChromium;
const ids: Record<string, Identity> = {};

async function keygen(name: string, kid: string): Promise<void> {
  const r = await coapsec(['keygen', '--name', name, '--out-dir', work, '--kid', kid, '--suite', '2']);
  assert.equal(r.code, 0, r.stderr);
  const d = coseKeyFromKeyObject(createPrivateKey(readFileSync(join(work, `${name}.key`), 'utf8')), { includePrivate: true }).d!;
  ids[name] = { ccs: toHex(readFileSync(join(work, `${name}.ccs`))), d: toHex(d) };
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'coapsec-browser-edhoc-'));
  process.env.COAPSEC_STATE_DIR = join(work, 'state');
  await keygen('device', '01');
  await keygen('page', '02');
  await keygen('stranger', '03');
  const deviceFile = join(work, 'device.json');
  const device = JSON.parse(readFileSync(deviceFile, 'utf8')) as { edhoc: { peers: unknown[] } };
  device.edhoc.peers = [{ name: 'page', ccs: 'page.ccs', resources: ['/*'] }];
  writeFileSync(deviceFile, JSON.stringify(device));
  server = await startDaemon(['serve', '--bind', '127.0.0.1:0', '--credentials', deviceFile], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
  const bundle = await bundleBrowser();
  const web = join(work, 'web');
  mkdirSync(web);
  for (const name of readdirSync(join(ROOT, 'web'))) copyFileSync(join(ROOT, 'web', name), join(web, name));
  writeFileSync(join(web, 'coapsec.js'), bundle.text);
  site = await servePages({
    '/': { type: 'text/html', body: '<!doctype html><meta charset="utf-8"><title>coapsec EDHOC end to end</title>' },
    '/coapsec.js': { type: 'text/javascript', body: bundle.text },
  });
  proxy = await startDaemon(['proxy', '--forward', '--bind', '127.0.0.1:0', '--ws', '0', '--ws-origin', site.origin, '--web', web, '--allow-destination', '127.0.0.1'], /proxy on coap:\/\/127\.0\.0\.1:(\d+)/);
  wsPort = Number((await proxy.waitFor(/proxy on coap\+ws:\/\/127\.0\.0\.1:(\d+) \(forward\)/))[1]);
  browser = await launchChromium();
  await browser.page.goto(`${site.origin}/`);
});

after(async () => {
  await browser?.close();
  await site?.close();
  await proxy?.stop();
  await server?.stop();
  killChildren();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** In the page: EDHOC with the device through the proxy, then one OSCORE GET of /hello. */
function runInPage(own: Identity, combined: boolean, connectionId: number): Promise<EdhocRun> {
  return browser.page.evaluate(
    async ({ wsPort, origin, own, device, combined, connectionId }) => {
      const lib = await import('/coapsec.js' as string);
      const frames: string[] = [];
      // What the proxy relays: every binary WebSocket message, each way.
      class RecordingWebSocket extends WebSocket {
        constructor(url: string | URL, protocols?: string | string[]) {
          super(url, protocols);
          this.addEventListener('message', (event: MessageEvent) => frames.push(`in:${lib.bytesToHex(new Uint8Array(event.data as ArrayBuffer))}`));
        }
        override send(data: ArrayBufferLike | ArrayBufferView | Blob | string): void {
          if (ArrayBuffer.isView(data)) frames.push(`out:${lib.bytesToHex(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))}`);
          super.send(data);
        }
      }
      const hex = (text: string) => lib.hexToBytes(text);
      const plain = new lib.BrowserCoapClient({ server: `coap+ws://127.0.0.1:${wsPort}`, origin, WebSocket: RecordingWebSocket });
      try {
        const config = {
          method: 3,
          suites: [2],
          credential: lib.ccsOwnCredential(hex(own.ccs), { crv: lib.CoseCurve.P256, d: hex(own.d) }),
          peers: lib.pinnedPeers([lib.ccsPeer(hex(device))]),
        };
        const edhoc = await lib.edhocOverCoap(plain, config, { connectionId: Uint8Array.of(connectionId), combined });
        const client = new lib.BrowserCoapClient({ server: `coap+ws://127.0.0.1:${wsPort}`, origin, oscore: edhoc.oscore, WebSocket: RecordingWebSocket, ...(edhoc.message3 ? { edhocMessage3: edhoc.message3 } : {}) });
        try {
          const response = await client.get('/hello');
          const parameters = await edhoc.session.oscore();
          return { text: response.text, status: response.status, peerCred: lib.bytesToHex(edhoc.session.peer.cred), senderId: lib.bytesToHex(parameters.senderId), recipientId: lib.bytesToHex(parameters.recipientId), frames };
        } finally {
          await client.close();
        }
      } catch (error) {
        return { error: `${(error as Error).name}: ${(error as Error).message}`, frames };
      } finally {
        await plain.close();
      }
    },
    { wsPort, origin: `coap://127.0.0.1:${server.port}`, own, device: ids.device!.ccs, combined, connectionId },
  );
}

function assertNoPlaintext(run: EdhocRun, text: string): void {
  const secret = Buffer.from(text).toString('hex');
  assert.ok(run.frames!.length >= 4, `only ${run.frames!.length} WebSocket messages recorded`);
  for (const frame of run.frames!) assert.ok(!frame.includes(secret), `the WebSocket carried "${text}" in the clear: ${frame}`);
}

/** Requests the page sent with Uri-Path "edhoc" readable (the EDHOC resource, in the clear as EDHOC messages are). */
const edhocPosts = (run: EdhocRun): number => run.frames!.filter((f) => f.startsWith('out:') && f.includes(Buffer.from('edhoc').toString('hex'))).length;

test('a page runs EDHOC with a device through proxy --ws, message_3 in the first OSCORE request (RFC 9668)', async () => {
  const run = await runInPage(ids.page!, true, 0x0a);
  assert.equal(run.error, undefined, run.error);
  assert.equal(run.status, '2.05 Content');
  assert.match(run.text!, /Hello/);
  assert.equal(run.peerCred, ids.device!.ccs, 'the page authenticated another credential than the device’s');
  assert.equal(run.recipientId, '0a');
  assertNoPlaintext(run, run.text!);
  // Combined: one POST to /.well-known/edhoc (message_1); message_3 went inside the OSCORE request.
  assert.equal(edhocPosts(run), 1);
});

test('a page runs EDHOC with message_3 POSTed on its own, then OSCORE', async () => {
  const run = await runInPage(ids.page!, false, 0x0b);
  assert.equal(run.error, undefined, run.error);
  assert.equal(run.status, '2.05 Content');
  assert.match(run.text!, /Hello/);
  assert.equal(run.recipientId, '0b');
  assertNoPlaintext(run, run.text!);
  assert.equal(edhocPosts(run), 2);
});

test('a page the device does not trust gets the device’s EDHOC error 3 (unknown credential)', async () => {
  const run = await runInPage(ids.stranger!, true, 0x0c);
  assert.match(run.error ?? '', /^EdhocPeerError: .*unknown credential/);
});

interface DemoResult {
  actions: Array<{ action: string; status: string; text: string }>;
  error?: string;
  done: boolean;
}

test('the demo page in EDHOC mode: EDHOC, then the sensor and the valve over OSCORE; the relayed hex holds no plaintext; screenshot saved', { timeout: 90_000 }, async () => {
  const page = (await proxy.waitFor(/web page on (http:\/\/127\.0\.0\.1:\d+)\//))[1]!;
  const identity = JSON.stringify({ ccs: ids.page!.ccs, key: ids.page!.d, peer: ids.device!.ccs });
  const fragment = new URLSearchParams({ edhoc: identity, device: `coap://127.0.0.1:${server.port}`, run: 'read,valve' });
  await browser.page.goto(`${page}/#${fragment}`);
  const handle = await browser.page.waitForFunction(() => (globalThis as { coapsecDemo?: DemoResult }).coapsecDemo?.done && (globalThis as { coapsecDemo?: DemoResult }).coapsecDemo, undefined, { timeout: 60_000 });
  const result = (await handle.jsonValue()) as DemoResult;
  assert.equal(result.error, undefined, `${result.error}; page errors: ${browser.errors.join(' | ')}`);
  assert.deepEqual(result.actions[0], { action: 'edhoc', status: 'ok', text: ids.device!.ccs });
  assert.deepEqual(result.actions[1], { action: 'read', status: '2.05 Content', text: 'Hello from coapsec' });
  assert.deepEqual(result.actions.at(-1), { action: 'valve', status: '2.04 Changed', text: '7' });
  const rows = await browser.page.$$eval('#log tr', (trs) => trs.map((tr) => Array.from(tr.children, (td) => (td as { textContent: string | null }).textContent ?? '')));
  assert.match(rows[0]![0]!, /EDHOC/);
  assert.match(rows[0]![2]!, /authenticated the device/);
  const relayed = Buffer.from(rows.map((r) => r[1]!.replace(/[^0-9a-f]/g, '')).join(''), 'hex');
  for (const plaintext of ['Hello from coapsec', 'hello', 'valve']) assert.equal(relayed.indexOf(plaintext), -1, `${plaintext} readable in what the proxy relayed`);
  const artifacts = join(ROOT, 'test-artifacts');
  mkdirSync(artifacts, { recursive: true });
  const shot = join(artifacts, 'browser-demo-edhoc.png');
  await browser.page.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 10_000);
  process.stdout.write(`# demo page (EDHOC mode) screenshot: ${shot}\n`);
});
