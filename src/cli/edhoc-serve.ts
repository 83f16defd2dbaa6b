/**
 * `serve` and `proxy` with --credentials whose file has an `edhoc` section: the server answers
 * EDHOC on /.well-known/edhoc (EdhocServer, RFC 9528 App. A.2, RFC 9668), and every request that an
 * EDHOC-made context verifies is authorized against the grant of the peer it authenticated
 * (edhoc.peers[].resources, CredentialStore.allows): outside it, a protected 4.03 and the handler
 * never runs. Inside it, the handler sees the peer as the layer's name `edhoc NAME`, NAME the
 * peers entry's — so it never collides with an OSCORE recipient's name.
 *
 * With --kudos-ead (`kudos`), EDHOC offers KUDOS in its EAD (draft-ietf-core-oscore-key-update
 * §4.8), and a context made with a peer that supports it runs KUDOS (a KudosServerSecurity peer,
 * its state in the state directory): its requests, KUDOS or not, are still checked against the grant.
 */
import { ResponseCode } from '../coap/codes.js';
import { decodeString, getOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { optionsToUri, type CoapScheme } from '../coap/uri.js';
import { edhocResponderConfig, type EdhocCredentials } from '../credentials/edhoc-entries.js';
import { CredentialStore, type PeerCredential } from '../edhoc/credentials.js';
import type { EdhocSession } from '../edhoc/session.js';
import { EdhocServer } from '../edhoc-coap/server.js';
import type { EndpointContext } from '../exchange/context.js';
import { decodeOscoreOption } from '../oscore/option.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { toMessage } from '../server/response.js';
import type { EdhocCompletion, ServerSecurity, UnprotectOutcome } from '../server/security.js';
import type { CoapServer } from '../server/server.js';
import { kudosSessionForEdhoc } from '../edhoc-coap/kudos-session.js';
import { KudosFileStorage } from '../kudos/persistence.js';
import { KudosServerSecurity } from '../kudos/server.js';
import type { KudosSession } from '../kudos/session.js';
import type { KudosEvent } from '../kudos/session-types.js';
import { kudosResource } from '../kudos/well-known.js';
import { bytesToHex as hex } from '../util/bytes.js';

/** EDHOC-made contexts a server keeps, and so the peers remembered for them (EdhocServer's default). */
const MAX_CONTEXTS = 1024;

const shown = (bytes: Uint8Array): string => (bytes.length === 0 ? '(empty)' : hex(bytes));

/**
 * KUDOS on EDHOC-made contexts: where their KUDOS records go, and the `-v` lines. The contexts
 * live in memory, so their records are deleted with them (replaced, evicted) and the caller clears
 * the directory when the server starts: a peer running EDHOC again and again leaves no files behind.
 */
export interface EdhocKudos {
  stateDirectory: string;
  onEvent?: (peer: string, event: KudosEvent) => void;
}

/** Serves EDHOC on `server` in front of the security it has; `log` (-v) gets one line per context made. */
export function attachEdhocResponder(server: CoapServer, edhoc: EdhocCredentials, log?: (line: string) => void, kudos?: EdhocKudos): EdhocServer {
  let grants: EdhocGrants | undefined;
  const responder = EdhocServer.attach(server, {
    responder: edhocResponderConfig(edhoc),
    maxContexts: MAX_CONTEXTS,
    ...(kudos ? { kudos: 'full' as const } : {}),
    onEstablished: (session, context, peerKudos) => {
      grants!.remember(session, context);
      log?.(`${describeSession(session, context)}${peerKudos !== undefined ? `; KUDOS support of the peer: ${peerKudos.toUpperCase()}` : ''}`);
      // §4.8: NONE (or nothing) from the peer gives no session, and KUDOS is not run with it.
      let storage: KudosFileStorage | undefined;
      const kudosSession = kudos && peerKudos && kudosSessionForEdhoc(session, peerKudos, { storage: (identity) => (storage = new KudosFileStorage(kudos.stateDirectory, identity)), peerKeepsQuiet: true });
      if (kudosSession) grants!.runKudos(`edhoc ${peerName(session.peer)}`, kudosSession, context, storage!);
    },
  });
  if (kudos) server.add(kudosResource());
  grants = new EdhocGrants(responder, server, kudos && new KudosServerSecurity([], { ...(kudos.onEvent ? { onEvent: kudos.onEvent } : {}) }));
  server.security = grants;
  return responder;
}

const peerName = (peer: PeerCredential): string => peer.grant?.name ?? peer.subject ?? 'unnamed';

function describeSession(session: EdhocSession, context: OscoreSecurityContext): string {
  const peer = peerName(session.peer);
  return (
    `EDHOC with ${peer}: method ${session.method}, cipher suite ${session.suite.id}, C_I ${shown(session.connectionIdI)}, C_R ${shown(session.connectionIdR)}; ` +
    `OSCORE Sender ID ${shown(context.sender.senderId)}, Recipient ID ${shown(context.primaryRecipient.params.recipientId)}`
  );
}

/** The EdhocServer's security, with each EDHOC-verified request checked against its peer's grant. */
class EdhocGrants implements ServerSecurity {
  /** The authenticated peer per EDHOC context, by its Recipient ID (C_R): bounded like the contexts. */
  readonly #peers = new Map<string, PeerCredential>();
  /** The KUDOS records of the contexts that run KUDOS, by Recipient ID. */
  readonly #kudosRecords = new Map<string, KudosFileStorage>();

  constructor(
    private readonly edhoc: EdhocServer,
    private readonly server: CoapServer,
    private readonly kudos: KudosServerSecurity | undefined,
  ) {}

  remember(session: EdhocSession, context: OscoreSecurityContext): void {
    const recipientId = context.primaryRecipient.params.recipientId;
    const kid = hex(recipientId);
    this.#peers.delete(kid);
    this.#stopKudos(kid); // a new context under this kid: a KUDOS session of the old one is void
    this.#peers.set(kid, session.peer);
    while (this.#peers.size > MAX_CONTEXTS) {
      const oldest = this.#peers.keys().next().value!;
      this.#peers.delete(oldest);
      this.#stopKudos(oldest);
    }
  }

  /** The context's requests go through its KUDOS session from now on. */
  runKudos(name: string, session: KudosSession, context: OscoreSecurityContext, record: KudosFileStorage): void {
    const recipientId = context.primaryRecipient.params.recipientId;
    this.kudos?.addPeer({ name, session, recipientId, aead: context.sender.aead });
    this.#kudosRecords.set(hex(recipientId), record);
  }

  #stopKudos(kid: string): void {
    this.kudos?.removePeer(Uint8Array.from(Buffer.from(kid, 'hex')));
    this.#kudosRecords.get(kid)?.remove();
    this.#kudosRecords.delete(kid);
  }

  /** §4.3.7 for the kudos-gate stage: requests held while an update the server started runs. */
  holdFor(message: CoapMessage): Promise<void> | undefined {
    return this.kudos?.holdFor(message);
  }

  completeEdhoc(request: CoapMessage): EdhocCompletion {
    return this.edhoc.completeEdhoc(request);
  }

  unprotect(request: CoapMessage, context: EndpointContext): UnprotectOutcome | undefined {
    const peer = this.#edhocPeer(request);
    const outcome = this.kudos?.unprotect(request, context) ?? this.edhoc.unprotect(request, context);
    if (peer === undefined || outcome === undefined || !outcome.ok) return outcome;
    const name = `edhoc ${peerName(peer)}`;
    const uri = this.#requestUri(outcome.inner, context);
    if (uri === undefined || !CredentialStore.allows(peer, uri)) {
      const refusal = toMessage({ code: ResponseCode.Forbidden, payload: `${name} is not granted this resource` });
      return { ok: false, response: outcome.protect(refusal, 'response') };
    }
    const layers = outcome.context.oscore ?? [];
    const last = layers.at(-1)!;
    return { ...outcome, context: { ...outcome.context, oscore: [...layers.slice(0, -1), { ...last, peer: name }] } };
  }

  /** The peer of the EDHOC context the request's kid names (EdhocServer looks there first, too). */
  #edhocPeer(request: CoapMessage): PeerCredential | undefined {
    const option = getOption(request, OptionNumber.Oscore);
    if (option === undefined) return undefined;
    try {
      const { kid, kidContext } = decodeOscoreOption(option);
      return kid !== undefined && kidContext === undefined ? this.#peers.get(hex(kid)) : undefined;
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
