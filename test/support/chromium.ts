/**
 * Headless Chromium for the browser-build tests: Debian's `chromium` (never a browser downloaded
 * by `playwright install`) driven by playwright-core, with a fresh profile per launch, a page
 * server on 127.0.0.1 port 0 (127.0.0.1 is a secure context, so the page has Web Crypto), and the
 * page's results collected from `window.__results`. A machine without chromium fails the test with
 * a message saying what to install.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** The flags the tests run Chromium with: no sandbox (containers), no network beyond the test's own. */
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface PageFile {
  type: string;
  body: string | Uint8Array;
}

/** Serves `files` (by URL path) on 127.0.0.1, port 0. */
export async function servePages(files: Record<string, PageFile>): Promise<{ origin: string; close(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    const file = files[new URL(request.url ?? '/', 'http://127.0.0.1').pathname];
    if (file === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' }).end(file.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface HeadlessChromium {
  readonly page: Page;
  /** What the page logged as errors (console.error, uncaught exceptions), for failure messages. */
  readonly errors: string[];
  close(): Promise<void>;
}

/** Launches Debian's chromium with a fresh --user-data-dir and opens one page. */
export async function launchChromium(): Promise<HeadlessChromium> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: these tests run the browser build in Debian's chromium (apt-get install -y chromium; .ci/run installs it)`);
  }
  const profile = mkdtempSync(join(tmpdir(), 'coapsec-chromium-'));
  let context: BrowserContext;
  try {
    // A persistent context is how playwright takes a --user-data-dir of our own: a fresh directory per launch.
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 60_000 });
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  return {
    page,
    errors,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Loads `url` and waits (bounded) for the page to set `window.__results`. */
export async function pageResults<T>(chromium: HeadlessChromium, url: string, timeout = 60_000): Promise<T> {
  await chromium.page.goto(url, { timeout });
  try {
    const handle = await chromium.page.waitForFunction(() => (globalThis as { __results?: unknown }).__results, undefined, { timeout });
    return (await handle.jsonValue()) as T;
  } catch (error) {
    throw new Error(`the page set no results: ${(error as Error).message}; page errors: ${chromium.errors.join(' | ') || 'none'}`);
  }
}
