/**
 * An EDHOC responder for a whole server, as `coapsec serve` runs it and library users can too:
 * EdhocServer on /.well-known/edhoc (RFC 9528 App. A.2, RFC 9668), and every request that an
 * EDHOC-made context verifies authorized against the grant of the peer it authenticated
 * (PeerGrant): outside it, a protected 4.03 and the handler never runs.
 * Inside it, the handler sees the peer as `edhoc NAME`, NAME the grant's — so it never collides
 * with an OSCORE recipient's name.
 *
 * With `kudos`, EDHOC offers KUDOS in its EAD (draft-ietf-core-oscore-key-update §4.8), and a
 * context made with a peer that supports it runs KUDOS (a KudosServerSecurity peer, its records in
 * `kudos.stateDirectory`): its requests, KUDOS or not, are still checked against the grant.
 *
 * With `store` (issue 26), each context made is written to a context store shared by several
 * nodes (StoredEdhocContexts) under the name `edhoc NAME`; a node that finds such a context in the
 * store (its client's EDHOC ran on another node) checks its requests against the grant called
 * NAME (`grantNamed`), so a failover never widens what a peer may reach.
 */
import { ResponseCode } from '../coap/codes.js';
import { decodeString, getOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { optionsToUri, type CoapScheme } from '../coap/uri.js';
import type { PeerCredential, PeerGrant } from '../edhoc/credentials.js';
import type { ResponderConfig } from '../edhoc/responder.js';
import type { EdhocSession } from '../edhoc/session.js';
import type { EndpointContext } from '../exchange/context.js';
import { KudosFileStorage } from '../kudos/persistence.js';
import { KudosServerSecurity } from '../kudos/server.js';
import type { KudosSession } from '../kudos/session.js';
import type { KudosEvent } from '../kudos/session-types.js';
import { kudosResource } from '../kudos/well-known.js';
import { decodeOscoreOption } from '../oscore/option.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { toMessage } from '../server/response.js';
import type { EdhocCompletion, ServerSecurity, UnprotectOutcome } from '../server/security.js';
import type { CoapServer } from '../server/server.js';
import type { ContextStore } from '../store/types.js';
import { bytesToHex as hex } from '../util/bytes.js';
import { kudosSessionForEdhoc } from './kudos-session.js';
import { EdhocServer } from './server.js';
import { StoredEdhocContexts, type StoredEdhocContextsOptions } from './stored-contexts.js';

/** EDHOC-made contexts a server keeps, and so the peers remembered for them (EdhocServer's default). */
const DEFAULT_MAX_CONTEXTS = 1024;

/**
 * KUDOS on EDHOC-made contexts: where their KUDOS records go, and its events. The contexts live in
 * memory, so their records are deleted with them (replaced, evicted); clear the directory when the
 * server starts, so that a peer running EDHOC again and again leaves no files behind.
 */
export interface EdhocKudos {
  stateDirectory: string;
  onEvent?: (peer: string, event: KudosEvent) => void;
}

export interface EdhocResponderOptions {
  /** Suites, methods, own credentials and the trusted peers with their grants. */
  readonly responder: ResponderConfig;
  /** EDHOC-made contexts kept (and peers remembered for them). Default 1024. */
  readonly maxContexts?: number;
  /** How many of them are kept materialised (the rest wait as bytes in a table). Default 1024. */
  readonly activeContexts?: number;
  /** One line per context made (`-v`). */
  readonly log?: (line: string) => void;
  readonly kudos?: EdhocKudos;
  /** Contexts shared with the other nodes of a farm; `grantNamed` then checks the ones they made. */
  readonly store?: { readonly contexts: ContextStore; readonly grantNamed: (name: string) => PeerGrant | undefined } & Omit<StoredEdhocContextsOptions, 'nameOf'>;
}

/** What attachEdhocResponder set up: the EDHOC server, and the store writes to wait for before closing the store. */
export interface EdhocResponder {
  readonly edhoc: EdhocServer;
  /** Resolves when every context write to the store started so far has finished. */
  settled(): Promise<void>;
}

/** Serves EDHOC on `server` in front of the security it has (a context store's, when shared). */
export function attachEdhocResponder(server: CoapServer, options: EdhocResponderOptions): EdhocResponder {
  const { kudos, log, store } = options;
  const maxContexts = options.maxContexts ?? DEFAULT_MAX_CONTEXTS;
  let grants: EdhocGrants | undefined;
  const shared = store && new StoredEdhocContexts(store.contexts, { ...store, nameOf: (session) => grantedName(session.peer) });
  const edhoc = EdhocServer.attach(server, {
    responder: options.responder,
    maxContexts,
    ...(options.activeContexts !== undefined ? { activeContexts: options.activeContexts } : {}),
    ...(kudos ? { kudos: 'full' as const } : {}),
    ...(shared ? { sharedContexts: shared } : {}),
    // A context dropped (the bound, or replaced): a KUDOS session of it is void.
    onDropped: (recipientId) => grants?.stopKudos(recipientId),
    onEstablished: (session, context, peerKudos) => {
      log?.(`${describeSession(session, context)}${peerKudos !== undefined ? `; KUDOS support of the peer: ${peerKudos.toUpperCase()}` : ''}`);
      // §4.8: NONE (or nothing) from the peer gives no session, and KUDOS is not run with it.
      let storage: KudosFileStorage | undefined;
      const kudosSession = kudos && peerKudos && kudosSessionForEdhoc(session, peerKudos, { storage: (identity) => (storage = new KudosFileStorage(kudos.stateDirectory, identity)), peerKeepsQuiet: true });
      if (kudosSession) grants!.runKudos(grantedName(session.peer), kudosSession, context, storage!);
    },
  });
  if (kudos) server.add(kudosResource());
  grants = new EdhocGrants(edhoc, server, kudos && new KudosServerSecurity([], { ...(kudos.onEvent ? { onEvent: kudos.onEvent } : {}) }), store?.grantNamed);
  server.security = grants;
  return { edhoc, settled: () => shared?.settled() ?? Promise.resolve() };
}

const PEER_PREFIX = 'edhoc ';
const peerName = (peer: PeerCredential): string => peer.grant?.name ?? peer.subject ?? 'unnamed';
/** The name handlers see for an EDHOC peer, and the name its context is stored under. */
const grantedName = (peer: PeerCredential): string => `${PEER_PREFIX}${peerName(peer)}`;
const shown = (bytes: Uint8Array): string => (bytes.length === 0 ? '(empty)' : hex(bytes));

function describeSession(session: EdhocSession, context: OscoreSecurityContext): string {
  return (
    `EDHOC with ${peerName(session.peer)}: method ${session.method}, cipher suite ${session.suite.id}, C_I ${shown(session.connectionIdI)}, C_R ${shown(session.connectionIdR)}; ` +
    `OSCORE Sender ID ${shown(context.sender.senderId)}, Recipient ID ${shown(context.primaryRecipient.params.recipientId)}`
  );
}

/** The EdhocServer's security, with each EDHOC-verified request checked against its peer's grant. */
class EdhocGrants implements ServerSecurity {
  /** The KUDOS records of the contexts that run KUDOS, by Recipient ID. */
  readonly #kudosRecords = new Map<string, KudosFileStorage>();

  constructor(
    private readonly edhoc: EdhocServer,
    private readonly server: CoapServer,
    private readonly kudos: KudosServerSecurity | undefined,
    /** For contexts another node made (found in the shared store under `edhoc NAME`). */
    private readonly grantNamed: ((name: string) => PeerGrant | undefined) | undefined,
  ) {}

  /** The context's requests go through its KUDOS session from now on. */
  runKudos(name: string, session: KudosSession, context: OscoreSecurityContext, record: KudosFileStorage): void {
    const recipientId = context.primaryRecipient.params.recipientId;
    this.kudos?.addPeer({ name, session, recipientId, aead: context.sender.aead });
    this.#kudosRecords.set(hex(recipientId), record);
  }

  /** Ends the KUDOS session of the context with this Recipient ID, if it ran one, and deletes its records. */
  stopKudos(recipientId: Uint8Array): void {
    const kid = hex(recipientId);
    const record = this.#kudosRecords.get(kid);
    if (record === undefined) return;
    this.kudos?.removePeer(recipientId);
    record.remove();
    this.#kudosRecords.delete(kid);
  }

  /** §4.3.7 for the kudos-gate stage: requests held while an update the server started runs. */
  holdFor(message: CoapMessage): Promise<void> | undefined {
    return this.kudos?.holdFor(message);
  }

  completeEdhoc(request: CoapMessage): EdhocCompletion {
    return this.edhoc.completeEdhoc(request);
  }

  /** A kid none of this node's contexts has is looked up in the shared store first (EdhocServer's fallback). */
  prepare(request: CoapMessage, context: EndpointContext): Promise<CoapMessage | undefined> | undefined {
    return this.edhoc.prepare(request, context);
  }

  unprotect(request: CoapMessage, context: EndpointContext): UnprotectOutcome | undefined {
    const peer = this.#edhocPeer(request);
    const outcome = this.kudos?.unprotect(request, context) ?? this.edhoc.unprotect(request, context);
    if (outcome === undefined || !outcome.ok) return outcome;
    const layers = outcome.context.oscore ?? [];
    const last = layers.at(-1)!;
    let grant: PeerGrant | undefined;
    let name: string;
    if (peer !== undefined) {
      grant = peer.grant;
      name = grantedName(peer);
    } else if (this.grantNamed !== undefined && last.peer?.startsWith(PEER_PREFIX)) {
      // A context another node made with EDHOC, fetched from the shared store under `edhoc NAME`.
      name = last.peer;
      grant = this.grantNamed(name.slice(PEER_PREFIX.length));
    } else {
      return outcome;
    }
    const uri = this.#requestUri(outcome.inner, context);
    if (uri === undefined || grant === undefined || !grant.allows(uri)) {
      const refusal = toMessage({ code: ResponseCode.Forbidden, payload: `${name} is not granted this resource` });
      return { ok: false, response: outcome.protect(refusal, 'response') };
    }
    return { ...outcome, context: { ...outcome.context, oscore: [...layers.slice(0, -1), { ...last, peer: name }] } };
  }

  /** The peer of the EDHOC context the request's kid names (EdhocServer looks there first, too). */
  #edhocPeer(request: CoapMessage): PeerCredential | undefined {
    const option = getOption(request, OptionNumber.Oscore);
    if (option === undefined) return undefined;
    try {
      const { kid, kidContext } = decodeOscoreOption(option);
      return kid !== undefined && kidContext === undefined ? this.edhoc.peerFor(kid) : undefined;
    } catch {
      return undefined;
    }
  }

  /** The URI the grant is checked against: Proxy-Uri for a forward proxy, else the Uri-* options (RFC 7252 §6.5). */
  #requestUri(inner: CoapMessage, context: EndpointContext): string | undefined {
    const proxyUri = getOption(inner, OptionNumber.ProxyUri);
    if (proxyUri !== undefined) return decodeString(proxyUri);
    const proxyScheme = getOption(inner, OptionNumber.ProxyScheme);
    const own = this.server.address();
    try {
      return optionsToUri(inner.options, { scheme: (proxyScheme !== undefined ? decodeString(proxyScheme) : context.scheme) as CoapScheme, host: own.address, port: own.port });
    } catch {
      return undefined;
    }
  }
}

