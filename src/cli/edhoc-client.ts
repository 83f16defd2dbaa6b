/**
 * The client commands' EDHOC (docs/edhoc.md, "On the command line"): with --credentials whose
 * `edhoc.peers` resources match the request URI, the request is protected with an OSCORE context
 * that EDHOC makes first — message_3 in the first OSCORE request (RFC 9668) unless --no-combined.
 * The library does the work (EdhocClientSecurity); this module picks the configuration, names
 * failures for the user (EdhocFailure: which server, what went wrong) and, with -v, reports the
 * EDHOC messages and the context's identifiers. Keys, PRKs and the master secret are never shown.
 */
import type { SendRequest } from '../client/blockwise.js';
import type { CoapClient } from '../client/client.js';
import type { MessageSecurity, ProtectedRequest } from '../client/security.js';
import { ResponseCode } from '../coap/codes.js';
import type { CoapMessage } from '../coap/message.js';
import { getOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { parseCoapUri } from '../coap/uri.js';
import { edhocInitiatorConfig, edhocPeersFor, type EdhocCredentials } from '../credentials/edhoc-entries.js';
import { EdhocConfigError, EdhocError, EdhocPeerError, EdhocStateError } from '../edhoc/errors.js';
import type { EdhocSession } from '../edhoc/session.js';
import { EdhocClientSecurity, EdhocRequestError } from '../edhoc-coap/client-security.js';
import { EdhocTransferError, postOverClient, type EdhocPost } from '../edhoc-coap/handshake.js';
import { ConnectionIdentifiers } from '../edhoc-coap/oscore-context.js';
import { EDHOC_PATH, splitCombinedPayload, splitPrefixed } from '../edhoc-coap/transfer.js';
import { CoapRequestError } from '../exchange/errors.js';
import type { KudosSupport } from '../kudos/edhoc-ead.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';

/** scheme://host:port of a CoAP URI: one EDHOC session per server. */
export function originOf(uri: string): string {
  const { scheme, host, port } = parseCoapUri(uri);
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** A request that was not sent (or not answered) because EDHOC with its server failed. */
export class EdhocFailure extends CoapRequestError {
  constructor(
    readonly origin: string,
    readonly reason: string,
  ) {
    super(`EDHOC with ${origin} failed: ${reason}; nothing was sent unprotected`);
    this.name = 'EdhocFailure';
  }
}

export interface ClientEdhocOptions {
  /** Send message_3 inside the first OSCORE request (RFC 9668); false: in its own POST. */
  readonly combined: boolean;
  /** -v: one line per EDHOC message and per context made. */
  readonly log?: (line: string) => void;
  /** --kudos-ead: offer KUDOS in EDHOC's EAD (draft-ietf-core-oscore-key-update §4.8) with this support of ours. */
  readonly kudos?: KudosSupport;
}

const hex = (bytes: Uint8Array): string => (bytes.length === 0 ? '(empty)' : Buffer.from(bytes).toString('hex'));

export class ClientEdhoc {
  readonly #edhoc: EdhocCredentials;
  readonly #options: ClientEdhocOptions;
  readonly #connectionIds = new ConnectionIdentifiers();
  readonly #servers = new Map<string, ReportedEdhocSecurity>();
  #client: CoapClient | undefined;

  constructor(edhoc: EdhocCredentials, options: ClientEdhocOptions) {
    this.#edhoc = edhoc;
    this.#options = options;
  }

  /** The client that sends the EDHOC messages (unprotected POSTs); the one the security is for. */
  attach(client: CoapClient): void {
    this.#client = client;
  }

  /** Whether the file's EDHOC peers cover `uri`: a request to it must then go over EDHOC. */
  covers(uri: string): boolean {
    return edhocPeersFor(this.#edhoc, uri).length > 0;
  }

  /**
   * The security for `uri`'s server, made on first use with the Initiator configuration for this
   * URI (only servers granted it are accepted); undefined when no EDHOC peer covers the URI.
   */
  securityFor(uri: string): MessageSecurity | undefined {
    if (!this.covers(uri)) return undefined;
    const origin = originOf(uri);
    let security = this.#servers.get(origin);
    if (security === undefined) {
      if (this.#client === undefined) throw new Error('ClientEdhoc.attach(client) must come before the first request');
      const post = reportedPost(postOverClient(this.#client, origin, EDHOC_PATH), origin, this.#options.log);
      const inner = new EdhocClientSecurity({
        initiator: edhocInitiatorConfig(this.#edhoc, uri),
        post,
        combined: this.#options.combined,
        connectionIds: this.#connectionIds,
        ...(this.#options.kudos !== undefined ? { kudos: this.#options.kudos } : {}),
      });
      security = new ReportedEdhocSecurity(inner, origin, this.#options.log);
      this.#servers.set(origin, security);
    }
    return security;
  }

  /** What EDHOC with `uri`'s server made, once it ran: the session, its OSCORE context and the peer's KUDOS support (with `kudos`). */
  established(uri: string): { session: EdhocSession; context: OscoreSecurityContext; peerKudos: KudosSupport | undefined } | undefined {
    const security = this.securityFor(uri);
    return security instanceof ReportedEdhocSecurity ? security.established : undefined;
  }

  /** Runs EDHOC for `uri` now if it needs it: an observation's registration is protected without `around`. */
  async establish(uri: string): Promise<void> {
    const security = this.securityFor(uri);
    if (security instanceof ReportedEdhocSecurity) await security.establish();
  }
}

/** EdhocClientSecurity with failures named for the user and, with a log, its progress reported. */
class ReportedEdhocSecurity implements MessageSecurity {
  #reported: EdhocSession | undefined;

  constructor(
    private readonly inner: EdhocClientSecurity,
    private readonly origin: string,
    private readonly log: ((line: string) => void) | undefined,
  ) {}

  get established(): { session: EdhocSession; context: OscoreSecurityContext; peerKudos: KudosSupport | undefined } | undefined {
    const { session, context } = this.inner;
    return session === undefined || context === undefined ? undefined : { session, context, peerKudos: this.inner.peerKudos };
  }

  async establish(): Promise<void> {
    try {
      await this.inner.establish();
    } catch (error) {
      throw this.#named(error);
    }
    this.#report();
  }

  around(exchange: SendRequest): SendRequest {
    const run = this.inner.around(exchange);
    return async (message) => {
      try {
        return await run(message);
      } catch (error) {
        throw this.#named(error);
      }
    };
  }

  protect(request: CoapMessage): ProtectedRequest {
    const prepared = this.inner.protect(request);
    if (this.log !== undefined && getOption(prepared.message, OptionNumber.Edhoc) !== undefined) {
      const message3 = splitCombinedPayload(prepared.message.payload)?.message3;
      if (message3 !== undefined) this.log(`EDHOC message_3 → ${this.origin}: ${message3.length} bytes, inside the first OSCORE request (RFC 9668)`);
    }
    this.#report();
    return prepared;
  }

  /** Once per session: who the server is, how EDHOC ran, and the context's identifiers. */
  #report(): void {
    const session = this.inner.session;
    const context = this.inner.context;
    if (this.log === undefined || session === undefined || context === undefined || session === this.#reported) return;
    this.#reported = session;
    const peer = session.peer.grant?.name ?? session.peer.subject ?? 'unnamed';
    this.log(`EDHOC with ${this.origin} (${peer}): method ${session.method}, cipher suite ${session.suite.id}, C_I ${hex(session.connectionIdI)}, C_R ${hex(session.connectionIdR)}`);
    const params = context.primaryRecipient.params;
    this.log(`OSCORE context from EDHOC: Sender ID ${hex(context.sender.senderId)}, Recipient ID ${hex(params.recipientId)}`);
    if (this.inner.peerKudos !== undefined) this.log(`KUDOS support of ${this.origin} (EDHOC EAD, §4.8): ${this.inner.peerKudos.toUpperCase()}`);
  }

  /** EDHOC's own errors become an EdhocFailure naming the server; anything else passes as it is. */
  #named(error: unknown): unknown {
    const peerError = error instanceof EdhocRequestError ? error.peerError : error instanceof EdhocPeerError ? error : undefined;
    if (peerError !== undefined) return new EdhocFailure(this.origin, `the server sent EDHOC error ${peerError.code}: ${peerError.message}`);
    if (error instanceof EdhocRequestError) return new EdhocFailure(this.origin, error.message);
    if (error instanceof EdhocError) return new EdhocFailure(this.origin, `${error.message} (EDHOC error ${error.code})`);
    if (error instanceof EdhocTransferError || error instanceof EdhocStateError || error instanceof EdhocConfigError) return new EdhocFailure(this.origin, error.message);
    return error;
  }
}

/** The POSTs to the EDHOC resource, reported with -v, and a failure to get an answer named as EDHOC's. */
function reportedPost(post: EdhocPost, origin: string, log: ((line: string) => void) | undefined): EdhocPost {
  return async (payload) => {
    const sent = splitPrefixed(payload);
    const name = sent.kind === 'message_1' ? 'message_1' : 'message_3';
    log?.(`EDHOC ${name} → ${origin}${EDHOC_PATH}: ${sent.message.length} bytes${name === 'message_3' ? ', in its own POST' : ''}`);
    let reply;
    try {
      reply = await post(payload);
    } catch (error) {
      throw new EdhocTransferError(`no answer to ${name}: ${(error as Error).message}`);
    }
    if (reply.payload.length > 0) {
      const answer = name === 'message_1' ? 'message_2' : 'message_4';
      log?.(`EDHOC ${reply.code === ResponseCode.Changed ? answer : 'answer'} ← ${origin}: ${reply.payload.length} bytes`);
    }
    return reply;
  };
}
