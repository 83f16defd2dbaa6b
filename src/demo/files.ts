/** Read-only files below a folder, served at their relative paths. */
import { readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { ResponseCode } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import type { CoapResponse, ResourceDefinition } from '../server/resource.js';

/**
 * Largest file served: a representation is read whole into memory and kept while block-wise
 * transfers of it run (RFC 7959 §2.5), so a folder of large files must not exhaust the server.
 */
export const MAX_FILE_SIZE = 1 << 20;
const MAX_LISTED = 200;

const FORMAT_BY_EXTENSION: Record<string, number> = {
  '.txt': ContentFormat.TextPlain,
  '.md': ContentFormat.TextPlain,
  '.json': ContentFormat.Json,
  '.cbor': ContentFormat.Cbor,
  '.xml': ContentFormat.Xml,
  '.wlnk': ContentFormat.LinkFormat,
};

const formatOf = (path: string): number => FORMAT_BY_EXTENSION[extname(path).toLowerCase()] ?? ContentFormat.OctetStream;

export function fileResource(dir: string): ResourceDefinition {
  const root = realpathSync(dir);
  if (!statSync(root).isDirectory()) throw new Error(`${dir} is not a directory`);
  const notFound: CoapResponse = { code: ResponseCode.NotFound };

  const resolve = (segments: readonly string[]): string | undefined => {
    // A Uri-Path segment may contain "/" or be ".."; neither may leave the folder.
    if (segments.length === 0 || segments.some((s) => s === '' || s === '.' || s === '..' || s.includes('/') || s.includes('\\') || s.includes('\0'))) {
      return undefined;
    }
    try {
      const real = realpathSync(join(root, ...segments));
      if (real !== root && !real.startsWith(root + sep)) return undefined;
      return statSync(real).isFile() ? real : undefined;
    } catch {
      return undefined;
    }
  };

  return {
    path: '/',
    subtree: true,
    hidden: true,
    handlers: {
      GET: (request) => {
        const file = resolve(request.subPath);
        if (!file) return notFound;
        // Not 4.13: that is about a request's payload (RFC 7252 §5.9.2.9), and the client can change
        // nothing in its request to get this file. The limit is the server's own, so a 5.xx
        // (§5.9.3.1) with a diagnostic payload (§5.5.2).
        if (statSync(file).size > MAX_FILE_SIZE) {
          return { code: ResponseCode.InternalServerError, payload: `${request.subPath.join('/')} is larger than the 1 MiB that serve --dir serves` };
        }
        return { code: ResponseCode.Content, contentFormat: formatOf(file), payload: readFileSync(file) };
      },
    },
    listLinks: () => {
      const links: Array<{ path: string; ct: number; sz: number }> = [];
      const walk = (folder: string): void => {
        for (const entry of readdirSync(folder, { withFileTypes: true })) {
          if (links.length >= MAX_LISTED) return;
          const full = join(folder, entry.name);
          if (entry.isDirectory()) walk(full);
          else if (entry.isFile()) links.push({ path: '/' + relative(root, full).split(sep).join('/'), ct: formatOf(full), sz: statSync(full).size });
        }
      };
      try {
        walk(root);
      } catch {
        // An unreadable folder lists what was read so far.
      }
      return links;
    },
  };
}
