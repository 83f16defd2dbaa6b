/**
 * `serve` and `proxy` with --credentials whose file has an `edhoc` section: the server answers
 * EDHOC on /.well-known/edhoc (EdhocServer, RFC 9528 App. A.2, RFC 9668), and every request that an
 * EDHOC-made context verifies is authorized against the grant of the peer it authenticated
 * (edhoc.peers[].resources, CredentialStore.allows): outside it, a protected 4.03 and the handler
 * never runs. Inside it, the handler sees the peer as the layer's name `edhoc NAME`, NAME the
 * peers entry's — so it never collides with an OSCORE recipient's name.
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
import { bytesToHex as hex } from '../util/bytes.js';

/** EDHOC-made contexts a server keeps, and so the peers remembered for them (EdhocServer's default). */
const MAX_CONTEXTS = 1024;

const shown = (bytes: Uint8Array): string => (bytes.length === 0 ? '(empty)' : hex(bytes));

/** Serves EDHOC on `server` in front of the security it has; `log` (-v) gets one line per context made. */
export function attachEdhocResponder(server: CoapServer, edhoc: EdhocCredentials, log?: (line: string) => void): EdhocServer {
  let grants: EdhocGrants | undefined;
  const responder = EdhocServer.attach(server, {
    responder: edhocResponderConfig(edhoc),
    maxContexts: MAX_CONTEXTS,
    onEstablished: (session, context) => {
      grants!.remember(session, context);
      log?.(describeSession(session, context));
    },
  });
  grants = new EdhocGrants(responder, server);
  server.security = grants;
  return responder;
}

function describeSession(session: EdhocSession, context: OscoreSecurityContext): string {
  const peer = session.peer.grant?.name ?? session.peer.subject ?? 'unnamed';
  return (
    `EDHOC with ${peer}: method ${session.method}, cipher suite ${session.suite.id}, C_I ${shown(session.connectionIdI)}, C_R ${shown(session.connectionIdR)}; ` +
    `OSCORE Sender ID ${shown(context.sender.senderId)}, Recipient ID ${shown(context.primaryRecipient.params.recipientId)}`
  );
}

/** The EdhocServer's security, with each EDHOC-verified request checked against its peer's grant. */
class EdhocGrants implements ServerSecurity {
  /** The authenticated peer per EDHOC context, by its Recipient ID (C_R): bounded like the contexts. */
  readonly #peers = new Map<string, PeerCredential>();

  constructor(
    private readonly edhoc: EdhocServer,
    private readonly server: CoapServer,
  ) {}

  remember(session: EdhocSession, context: OscoreSecurityContext): void {
    const kid = hex(context.primaryRecipient.params.recipientId);
    this.#peers.delete(kid);
    this.#peers.set(kid, session.peer);
    while (this.#peers.size > MAX_CONTEXTS) this.#peers.delete(this.#peers.keys().next().value!);
  }

  completeEdhoc(request: CoapMessage): EdhocCompletion {
    return this.edhoc.completeEdhoc(request);
  }

  unprotect(request: CoapMessage, context: EndpointContext): UnprotectOutcome | undefined {
    const peer = this.#edhocPeer(request);
    const outcome = this.edhoc.unprotect(request, context);
    if (peer === undefined || outcome === undefined || !outcome.ok) return outcome;
    const name = `edhoc ${peer.grant?.name ?? peer.subject ?? 'unnamed'}`;
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
