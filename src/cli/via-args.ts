/**
 * Routes through OSCORE-capable proxies on the command line (draft-ietf-core-oscore-capable-
 * proxies; docs/oscore-proxies.md):
 *   --via URI[,CREDENTIALS]   a proxy on the way, nearest first (repeat for a chain). Its OSCORE
 *                             context is the client context for URI in CREDENTIALS, or else in
 *                             --credentials; none: no layer for that proxy. A URI with a path is a
 *                             reverse proxy whose path prefix stands for the origin (Appendix B.8).
 * For `coapsec proxy`, the client contexts of --credentials protect the upstream leg (one more layer
 * towards the next hop or origin they match) and --allow NAME restricts forwarding to clients
 * authenticated by those recipient names (§2.4 step 4).
 */
import type { RouteHop } from '../client/route.js';
import { loadCredentials, matchClientContext, type Credentials } from '../credentials/credentials-file.js';
import { CredentialsError } from '../credentials/errors.js';
import { openSecurityContext, type OpenedContext } from '../credentials/runtime.js';
import { defaultStateDirectory } from '../credentials/state-directory.js';
import { parseCoapUri } from '../coap/uri.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { OscoreConfigError } from '../oscore/errors.js';
import { UsageError } from './errors.js';

export const VIA_FLAGS = {
  via: { type: 'string', multiple: true },
} as const;

export const VIA_USAGE = `  --via URI[,CREDENTIALS]  go through this proxy (repeat for a chain, nearest first); its OSCORE
                          context: the client context for URI in CREDENTIALS or --credentials`;

function guarded<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof CredentialsError || error instanceof OscoreConfigError) throw new UsageError(error.message);
    throw error;
  }
}

export interface ClientRoute {
  via: RouteHop[] | undefined;
  close(): void;
}

/** The --via hops; contexts opened with persistent sequence numbers (RFC 8613 B.1.1). */
export function clientRoute(values: { via?: string[] | undefined; credentials?: string | undefined }): ClientRoute {
  const opened: OpenedContext[] = [];
  const close = (): void => opened.forEach((o) => o.close());
  if (!values.via || values.via.length === 0) return { via: undefined, close };
  const files = new Map<string, Credentials>();
  const load = (path: string): Credentials => {
    let c = files.get(path);
    if (!c) files.set(path, (c = guarded(() => loadCredentials(path))));
    return c;
  };
  const via = values.via.map((text): RouteHop => {
    const comma = text.indexOf(',');
    const uri = comma < 0 ? text : text.slice(0, comma);
    const file = comma < 0 ? values.credentials : text.slice(comma + 1);
    let parsed;
    try {
      parsed = parseCoapUri(uri);
    } catch (error) {
      throw new UsageError(`--via ${text}: ${(error as Error).message}`);
    }
    const hop: RouteHop = { uri, ...(parsed.path.filter((s) => s !== '').length > 0 ? { kind: 'reverse' as const } : {}) };
    if (file === undefined) return hop;
    const credentials = load(file);
    const entry = matchClientContext(credentials, uri);
    if (!entry) {
      if (comma >= 0) throw new UsageError(`--via ${text}: ${file} has no OSCORE context for ${uri}`);
      return hop;
    }
    const context = guarded(() => openSecurityContext(entry.context, { stateDirectory: credentials.stateDirectory, registryDirectory: defaultStateDirectory() }));
    opened.push(context);
    return { ...hop, context: context.context };
  });
  return { via, close };
}

/** For `coapsec proxy`: the upstream layer's context by target URI, from the credentials' client contexts. */
export function proxyUpstreamContexts(credentialsPath: string | undefined): { lookup: ((target: { uri: string }) => OscoreSecurityContext | undefined) | undefined; close(): void } {
  if (credentialsPath === undefined) return { lookup: undefined, close: () => {} };
  const credentials = guarded(() => loadCredentials(credentialsPath));
  if (credentials.oscore.length === 0) return { lookup: undefined, close: () => {} };
  const opened = new Map<object, OpenedContext>();
  return {
    lookup: ({ uri }) => {
      const entry = matchClientContext(credentials, uri);
      if (!entry) return undefined;
      let o = opened.get(entry);
      if (!o) opened.set(entry, (o = guarded(() => openSecurityContext(entry.context, { stateDirectory: credentials.stateDirectory, registryDirectory: defaultStateDirectory() }))));
      return o.context;
    },
    close: () => opened.forEach((o) => o.close()),
  };
}
