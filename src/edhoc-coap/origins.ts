/**
 * Automatic EDHOC for a CoapClient: one EdhocClientSecurity per server (scheme, host and port),
 * made on first use, all sharing one set of C_I values (RFC 9668 §4.1.1). Give `securityFor` to
 * the client's `security` option and every request to a server runs EDHOC first when needed.
 */
import type { CoapClient } from '../client/client.js';
import { parseCoapUri } from '../coap/uri.js';
import { EdhocClientSecurity, type EdhocClientOptions } from './client-security.js';
import { postOverClient } from './handshake.js';
import { ConnectionIdentifiers } from './oscore-context.js';
import { EDHOC_PATH } from './transfer.js';

export interface EdhocClientConfig extends Omit<EdhocClientOptions, 'post' | 'connectionIds'> {
  /** The EDHOC resource's path on every server. Default /.well-known/edhoc. */
  readonly path?: string;
  /** Which URIs get EDHOC-made OSCORE (default: all); the others go unprotected. */
  readonly match?: (uri: string) => boolean;
}

export class EdhocClient {
  readonly #client: CoapClient;
  readonly #config: EdhocClientConfig;
  readonly #connectionIds = new ConnectionIdentifiers();
  readonly #servers = new Map<string, EdhocClientSecurity>();

  /** `client` sends the EDHOC messages (unprotected POSTs); it may be the client this serves. */
  constructor(client: CoapClient, config: EdhocClientConfig) {
    this.#client = client;
    this.#config = config;
  }

  /** The security for requests to `uri`'s server, or undefined when `match` leaves it out. */
  securityFor(uri: string): EdhocClientSecurity | undefined {
    if (this.#config.match !== undefined && !this.#config.match(uri)) return undefined;
    const { scheme, host, port } = parseCoapUri(uri);
    const origin = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    let security = this.#servers.get(origin);
    if (security === undefined) {
      security = new EdhocClientSecurity({ ...this.#config, post: postOverClient(this.#client, origin, this.#config.path ?? EDHOC_PATH), connectionIds: this.#connectionIds });
      this.#servers.set(origin, security);
    }
    return security;
  }
}
