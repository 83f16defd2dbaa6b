/**
 * The static files of `coapsec proxy --ws PORT --web DIR`: the demo page and the browser bundle,
 * served by the same HTTP server as the WebSocket upgrade, so the page's origin is the proxy's own.
 * GET and HEAD only; the path is decoded once, and any ".." segment, backslash, NUL or a file
 * whose real path (after symbolic links) leaves DIR gets 404, never the file. Known extensions
 * get their content type; others are refused rather than sniffed.
 */
import { createReadStream, realpathSync, statSync } from 'node:fs';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { extname, join, sep } from 'node:path';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json',
};

export function contentTypeOf(path: string): string | undefined {
  return CONTENT_TYPES[extname(path).toLowerCase()];
}

/** A request listener serving the files under `dir`; throws if `dir` is not a directory. */
export function staticFiles(dir: string): RequestListener {
  const root = realpathSync(dir);
  if (!statSync(root).isDirectory()) throw new Error(`${dir} is not a directory`);
  return (request: IncomingMessage, response: ServerResponse) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('GET or HEAD only\n');
      return;
    }
    const file = resolveUnder(root, request.url ?? '/');
    const type = file && contentTypeOf(file);
    if (!file || !type) {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    response.writeHead(200, {
      'Content-Type': type,
      'Content-Length': String(statSync(file).size),
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-cache',
    });
    if (request.method === 'HEAD') response.end();
    else createReadStream(file).pipe(response);
  };
}

/** The regular file under `root` a request target names, or undefined. */
export function resolveUnder(root: string, target: string): string | undefined {
  const pathname = target.split(/[?#]/, 1)[0]!;
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return undefined;
  }
  if (!decoded.startsWith('/') || decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const segments = decoded.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '..' || s === '.')) return undefined;
  if (decoded.endsWith('/')) segments.push('index.html');
  if (segments.length === 0) segments.push('index.html');
  let real: string;
  try {
    real = realpathSync(join(root, ...segments));
    if (!statSync(real).isFile()) return undefined;
  } catch {
    return undefined;
  }
  return real === root || real.startsWith(root + sep) ? real : undefined;
}
