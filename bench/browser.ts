/**
 * Browser benchmark (issue 27): OSCORE GET round trips per second from a page in headless Chromium
 * (coapsec/browser, Web Crypto) against the same from Node (CoapClient, node:crypto), both through
 * the same `coapsec proxy --forward --ws` to `coapsec serve` over UDP, one request in flight:
 *
 *   page  Chromium ══ coap+ws ══▶ coapsec proxy ── UDP ──▶ coapsec serve (A)
 *   node  CoapClient ══ coap+ws ══▶ the same proxy ── UDP ──▶ coapsec serve (B)
 *
 * Each side has its own credentials and its own server, so no two senders ever share a Sender
 * Context (a shared one would reuse nonces). Sequential requests measure latency-bound round
 * trips, what a page that waits for each answer sees. Rounds alternate the sides; medians shown.
 *
 *   node dist/bench/browser.js [--rounds N] [--duration MS]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CoapClient } from '../src/client/client.js';
import { loadCredentials } from '../src/credentials/credentials-file.js';
import { launchChromium, servePages } from '../test/support/chromium.js';
import { ROOT, coapsec, killChildren, startDaemon, type Daemon } from '../test/support/cli-harness.js';
import { median } from './common.js';
import { environment, fmt, runMain, table } from './harness.js';

const USAGE = 'usage: node dist/bench/browser.js [--rounds N] [--duration MS]';

function args(): { rounds: number; duration: number } {
  const argv = process.argv.slice(2);
  const s = { rounds: 3, duration: 5_000 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (argv[i] === '--rounds' && Number.isInteger(value) && value >= 1 && value <= 20) s.rounds = value;
    else if (argv[i] === '--duration' && Number.isInteger(value) && value >= 500 && value <= 60_000) s.duration = value;
    else throw new Error(USAGE);
  }
  return s;
}

async function credentialsFor(work: string, peer: string): Promise<string> {
  const dir = path.join(work, peer);
  const made = await coapsec(['credentials', 'new', '--peer', peer, '--out-dir', dir]);
  if (made.code !== 0) throw new Error(made.stderr);
  return dir;
}

async function main(): Promise<void> {
  const s = args();
  const work = mkdtempSync(path.join(tmpdir(), 'coapsec-bench-browser-'));
  process.env.COAPSEC_STATE_DIR = path.join(work, 'state');
  const daemons: Daemon[] = [];
  const { bundleBrowser } = (await import(pathToFileURL(path.join(ROOT, 'scripts', 'build-browser.mjs')).href)) as { bundleBrowser(): Promise<{ text: string }> };
  const site = await servePages({
    '/': { type: 'text/html', body: '<!doctype html><meta charset="utf-8"><title>coapsec bench</title>' },
    '/coapsec.js': { type: 'text/javascript', body: (await bundleBrowser()).text },
  });
  const browser = await launchChromium();
  try {
    const pageCreds = await credentialsFor(work, 'page');
    const nodeCreds = await credentialsFor(work, 'node');
    const serve = (dir: string) => startDaemon(['serve', '--bind', '127.0.0.1:0', '--credentials', path.join(dir, 'server.json')], /serving on coap:\/\/127\.0\.0\.1:(\d+)/);
    const pageServer = await serve(pageCreds);
    const nodeServer = await serve(nodeCreds);
    daemons.push(pageServer, nodeServer);
    // The rate limit is lifted: the benchmark is the runaway page it guards against.
    const proxy = await startDaemon(['proxy', '--forward', '--bind', '127.0.0.1:0', '--ws', '0', '--ws-origin', site.origin, '--ws-rate', '1000000', '--allow-destination', '127.0.0.1'], /proxy on coap:\/\/127\.0\.0\.1:(\d+)/);
    daemons.push(proxy);
    const wsPort = Number((await proxy.waitFor(/proxy on coap\+ws:\/\/127\.0\.0\.1:(\d+)/))[1]);
    await browser.page.goto(`${site.origin}/`);

    const pageContext = (JSON.parse(readFileSync(path.join(pageCreds, 'client.json'), 'utf8')) as { oscore: Array<{ context: Record<string, string> }> }).oscore[0]!.context;
    // The client context matches its server's URI, port included: known only now.
    const nodeFile = path.join(nodeCreds, 'client.json');
    writeFileSync(nodeFile, readFileSync(nodeFile, 'utf8').replace('coap://127.0.0.1/*', `coap://127.0.0.1:${nodeServer.port}/*`), { mode: 0o600 });
    const nodeCredentials = loadCredentials(nodeFile);
    const nodeUri = `coap://127.0.0.1:${nodeServer.port}/hello`;

    const runPage = (ms: number): Promise<{ count: number; elapsed: number; error?: string }> =>
      browser.page.evaluate(
        async ({ wsPort, origin, context, ms }) => {
          const lib = await import('/coapsec.js' as string);
          const oscore = await lib.openOscore(context, { reserve: 1024 });
          const client = new lib.BrowserCoapClient({ server: `coap+ws://127.0.0.1:${wsPort}`, origin, oscore });
          try {
            await client.get('/hello');
            const start = performance.now();
            let count = 0;
            while (performance.now() - start < ms) {
              const r = await client.get('/hello');
              if (r.status !== '2.05 Content') throw new Error(r.status);
              count++;
            }
            return { count, elapsed: performance.now() - start };
          } catch (error) {
            return { count: 0, elapsed: 0, error: String(error) };
          } finally {
            await client.close();
          }
        },
        { wsPort, origin: `coap://127.0.0.1:${pageServer.port}`, context: pageContext, ms },
      );
    // A fresh client (and WebSocket) per round, as the page has.
    const runNode = async (ms: number): Promise<{ count: number; elapsed: number }> => {
      const nodeClient = new CoapClient({ credentials: nodeCredentials, proxy: `coap+ws://127.0.0.1:${wsPort}` });
      try {
        return await timedGets(nodeClient, ms);
      } finally {
        await nodeClient.close();
      }
    };
    const timedGets = async (nodeClient: CoapClient, ms: number): Promise<{ count: number; elapsed: number }> => {
      await nodeClient.get(nodeUri);
      const start = performance.now();
      let count = 0;
      while (performance.now() - start < ms) {
        const r = await nodeClient.get(nodeUri);
        if (r.code !== 69) throw new Error(`node GET answered ${r.code}`);
        count++;
      }
      return { count, elapsed: performance.now() - start };
    };

    const rates: Record<'page' | 'node', number[]> = { page: [], node: [] };
    for (let round = 1; round <= s.rounds; round++) {
      const order: Array<'page' | 'node'> = round % 2 === 1 ? ['page', 'node'] : ['node', 'page'];
      for (const side of order) {
        const r = side === 'page' ? await runPage(s.duration) : await runNode(s.duration);
        if ('error' in r && r.error) throw new Error(`page: ${r.error}`);
        const rate = (r.count / r.elapsed) * 1000;
        rates[side].push(rate);
        process.stderr.write(`round ${round}/${s.rounds} ${side}: ${fmt(rate)} GET/s (${r.count} in ${fmt(r.elapsed)} ms)\n`);
      }
    }
    const page = median(rates.page);
    const node = median(rates.node);
    console.log(environment());
    console.log(`${s.rounds} rounds × ${s.duration} ms per side, one request in flight, medians`);
    console.log(
      table([
        ['client', 'OSCORE GET/s', 'ms per round trip'],
        ['page (Chromium, Web Crypto)', fmt(page), (1000 / page).toFixed(2)],
        ['node (CoapClient, node:crypto)', fmt(node), (1000 / node).toFixed(2)],
      ]),
    );
  } finally {
    await browser.close();
    await site.close();
    for (const d of daemons) await d.stop();
    killChildren();
    rmSync(work, { recursive: true, force: true });
  }
}

runMain(main);
