/**
 * A client's OSCORE protection from a credentials file (docs/credentials.md): the context whose
 * `match` pattern fits a request URI protects it, with Sender Sequence Numbers persisted in the
 * file's state directory and registered in the common state directory (RFC 8613 Appendix B.1.1;
 * credentials/sequence-store.ts). Contexts are opened on first use and closed with the client.
 *
 * A client given credentials means "protect this": a request that no pattern matches is refused
 * (NoSecurityContextError, nothing sent) unless the client or the request allows unprotected
 * requests.
 */
import { loadCredentials, matchClientContext, type ClientOscoreEntry, type Credentials } from '../credentials/credentials-file.js';
import { openSecurityContext, type OpenedContext } from '../credentials/runtime.js';
import { defaultStateDirectory } from '../credentials/state-directory.js';
import { CoapRequestError } from '../exchange/errors.js';
import type { KudosClientPeer, SendKudosRequest } from '../kudos/client.js';
import { attachKudosClient } from '../kudos/credentials.js';
import type { KudosEvent } from '../kudos/session-types.js';
import { parseCoapUri } from '../coap/uri.js';
import { OscoreClientSecurity } from './oscore.js';

/** scheme://host:port of a request URI: where its KUDOS requests go (/.well-known/kudos). */
function originOf(uri: string): string {
  const u = parseCoapUri(uri);
  const host = u.host.includes(':') ? `[${u.host}]` : u.host;
  return `${u.scheme}://${host}:${u.port}`;
}

/** A request the client would have to send without OSCORE although it was given credentials; nothing was sent. */
export class NoSecurityContextError extends CoapRequestError {
  constructor(
    readonly uri: string,
    /** The `match` patterns that were tried, as written in the file. */
    readonly patterns: readonly string[],
    readonly file: string,
    /** The file also has an `edhoc` section, none of whose peers' resources match `uri`. */
    readonly edhocSection = false,
  ) {
    super(
      `no OSCORE context in ${file} matches ${uri} (${patterns.length > 0 ? `patterns tried: ${patterns.join(', ')}` : 'it has no client contexts in "oscore"'}` +
        `${edhocSection ? '; no edhoc.peers entry has a resource matching it' : ''}); nothing was sent`,
    );
    this.name = 'NoSecurityContextError';
  }
}

export interface ClientCredentialsOptions {
  /**
   * Where every context is also registered, so one sender context has one counter however it is
   * configured. Default: the common state directory (defaultStateDirectory()).
   */
  registryDirectory?: string;
  /**
   * For contexts with a `kudos` entry: how a KUDOS request reaches the origin (scheme://host:port)
   * of the URI the context was first opened for, and who hears the update's events (`-v`).
   */
  kudos?: { send: (origin: string) => SendKudosRequest; onEvent?: (event: KudosEvent) => void };
}

export class ClientCredentials {
  readonly credentials: Credentials;
  private readonly registryDirectory: string;
  private readonly opened = new Map<ClientOscoreEntry, { opened: OpenedContext; security: OscoreClientSecurity; kudos?: KudosClientPeer }>();
  private readonly kudos: ClientCredentialsOptions['kudos'];

  /** Loads `source` when it is a path; throws CredentialsError for a file that does not load. */
  constructor(source: string | Credentials, options: ClientCredentialsOptions = {}) {
    this.credentials = typeof source === 'string' ? loadCredentials(source) : source;
    this.registryDirectory = options.registryDirectory ?? defaultStateDirectory();
    this.kudos = options.kudos;
  }

  /** The `match` patterns of the file's client contexts. */
  get patterns(): string[] {
    return this.credentials.oscore.map((entry) => entry.match);
  }

  /**
   * The protection for `uri`, opening its context on first use (CredentialsError when its
   * sequence number store cannot be opened, e.g. another process uses the context); undefined when
   * no pattern matches.
   */
  securityFor(uri: string): OscoreClientSecurity | undefined {
    const entry = matchClientContext(this.credentials, uri);
    if (!entry) return undefined;
    let found = this.opened.get(entry);
    if (!found) {
      const opened = openSecurityContext(entry.context, { stateDirectory: this.credentials.stateDirectory, registryDirectory: this.registryDirectory });
      const security = new OscoreClientSecurity(opened.context);
      found = { opened, security };
      if (entry.context.kudos !== undefined) {
        const origin = originOf(uri);
        const send = this.kudos?.send(origin) ?? (() => Promise.reject(new Error('this client cannot send KUDOS requests')));
        found.kudos = attachKudosClient(entry.context, this.credentials.stateDirectory, security.requester, { send, ...(this.kudos?.onEvent ? { onEvent: this.kudos.onEvent } : {}) });
      }
      this.opened.set(entry, found);
    }
    return found.security;
  }

  /** The KUDOS peer of the context that protects `uri` (opening it), when its entry has `kudos`. */
  kudosPeerFor(uri: string): KudosClientPeer | undefined {
    const entry = matchClientContext(this.credentials, uri);
    if (!entry || !this.securityFor(uri)) return undefined;
    return this.opened.get(entry)?.kudos;
  }

  /** The refusal for a URI no pattern matches. */
  refusal(uri: string): NoSecurityContextError {
    return new NoSecurityContextError(uri, this.patterns, this.credentials.file, this.credentials.edhoc !== undefined);
  }

  /** Writes the exact next sequence numbers back and releases the contexts' locks. */
  close(): void {
    for (const { opened } of this.opened.values()) opened.close();
    this.opened.clear();
  }
}
