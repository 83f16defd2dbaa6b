/**
 * Which HTTP requests the HTTP→CoAP cross-proxy serves (issue 17 item 2). A browser on the
 * proxy's host (or network) runs pages from anywhere, and those pages can send requests to
 * http://127.0.0.1:8080/hc/coap://device/... :
 *
 * - Cross-site request forgery: a page on https://evil.example POSTs or PUTs to the proxy. The
 *   browser sends it (a "simple" POST needs no preflight) with an Origin header. State-changing
 *   requests whose Origin is neither the proxy's own nor an allowed one get 403.
 * - DNS rebinding: evil.example first resolves to the attacker's server, then to 127.0.0.1; its
 *   page's requests are then same-origin to the browser and their answers readable. The browser
 *   still sends "Host: evil.example", so a Host outside the configured names gets 421.
 * - CORS: only allowed origins get Access-Control-Allow-Origin (so only their pages can read
 *   answers) and an answer to a preflight (OPTIONS with Access-Control-Request-Method).
 *
 * Clients that are not browsers (curl, other programs) send no Origin and are not affected. Pure:
 * no I/O.
 */
import { isIP } from 'node:net';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

export interface HttpRequestPolicyOptions {
  /**
   * Host names the proxy answers to, besides IP literals and "localhost" (a rebinding attack
   * needs a name the attacker controls, so literals are always acceptable). Matched without port.
   */
  hostNames?: readonly string[];
  /** Web origins ("https://app.example", "http://localhost:3000") whose pages may use the proxy, including state-changing requests and reading answers. */
  allowedOrigins?: readonly string[];
}

export type HttpVerdict =
  | { kind: 'serve'; headers: OutgoingHttpHeaders }
  | { kind: 'refuse'; status: number; body: string }
  | { kind: 'preflight'; headers: OutgoingHttpHeaders };

/** Methods a browser lets any page send without asking (and that do not change state in CoAP terms). */
const SAFE_METHODS = new Set(['GET', 'HEAD']);
/** What an allowed origin's pages may send (RFC 8075 §5: the methods the proxy maps). */
const CORS_METHODS = 'GET, HEAD, POST, PUT, DELETE, PATCH, QUERY, IPATCH';
const CORS_HEADERS = 'accept, content-type, content-encoding, if-match, if-none-match';
const CORS_EXPOSED = 'etag, location, x-coap-response-code, x-cache, retry-after';

/** "scheme://host[:port]" with nothing after it, as an Origin header carries it (RFC 6454 §6.2). */
export function isWebOrigin(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === text;
  } catch {
    return false;
  }
}

export class HttpRequestPolicy {
  private readonly hostNames: Set<string>;
  private readonly allowedOrigins: Set<string>;

  constructor(options: HttpRequestPolicyOptions = {}) {
    this.hostNames = new Set(['localhost', ...(options.hostNames ?? []).map(normalHost)]);
    this.allowedOrigins = new Set((options.allowedOrigins ?? []).map((o) => new URL(o).origin));
  }

  /** The verdict on a request with `method` (upper case) and `headers`, before its body is read. */
  judge(method: string, headers: IncomingHttpHeaders): HttpVerdict {
    const host = headers.host;
    if (host === undefined || host === '') return { kind: 'refuse', status: 400, body: 'a Host header is required' };
    const hostName = hostOf(host);
    if (hostName === undefined || !(isIP(hostName) !== 0 || this.hostNames.has(hostName))) {
      // RFC 9110 §15.5.20: 421 Misdirected Request, this server does not answer for that authority.
      return { kind: 'refuse', status: 421, body: `this proxy does not answer for host ${JSON.stringify(host.slice(0, 100))} (DNS rebinding protection; see --http-host)` };
    }
    const origin = single(headers.origin);
    const allowed = origin !== undefined && this.allowedOrigins.has(origin);
    // A page's own origin (same-origin requests carry Origin too, for non-GET methods).
    const sameOrigin = origin !== undefined && (origin === `http://${host.toLowerCase()}` || origin === `https://${host.toLowerCase()}`);
    const cors: OutgoingHttpHeaders = allowed ? { 'access-control-allow-origin': origin, 'access-control-expose-headers': CORS_EXPOSED, vary: 'Origin' } : { vary: 'Origin' };

    if (method === 'OPTIONS' && headers['access-control-request-method'] !== undefined) {
      if (!allowed) return { kind: 'refuse', status: 403, body: 'cross-origin requests from this origin are not allowed (see --http-allow-origin)' };
      return { kind: 'preflight', headers: { ...cors, 'access-control-allow-methods': CORS_METHODS, 'access-control-allow-headers': CORS_HEADERS, 'access-control-max-age': '600' } };
    }
    if (!SAFE_METHODS.has(method) && !allowed && !sameOrigin) {
      // Origin is sent by browsers with every cross-origin non-GET request; Sec-Fetch-Site (Fetch
      // Metadata) covers one whose Origin was stripped. "null" (sandboxed frames, file:) is refused too.
      const site = single(headers['sec-fetch-site']);
      if (origin !== undefined || site === 'cross-site' || site === 'same-site') {
        return { kind: 'refuse', status: 403, body: 'cross-origin state-changing requests are not allowed (see --http-allow-origin)' };
      }
    }
    return { kind: 'serve', headers: cors };
  }
}

const single = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

function normalHost(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** The host of a Host header value ("name:port", "[v6]:port"), lower case, without a trailing dot. */
function hostOf(value: string): string | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::\d{1,5})?$/.exec(value.trim());
  if (!m) return undefined;
  return normalHost(m[1] ?? m[2]!);
}
