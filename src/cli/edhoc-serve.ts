/**
 * `serve` and `proxy` with --credentials whose file has an `edhoc` section: the library's EDHOC
 * responder (edhoc-coap/responder.ts: EDHOC on /.well-known/edhoc, each request checked against
 * the grant of its peer, KUDOS with --kudos-ead) configured from that section; with `serve
 * --store`, its contexts shared through the store with the other nodes.
 */
import { edhocResponderConfig, type EdhocCredentials } from '../credentials/edhoc-entries.js';
import { attachEdhocResponder as attachResponder, type EdhocKudos, type EdhocResponder } from '../edhoc-coap/responder.js';
import type { CoapServer } from '../server/server.js';
import type { ContextStore } from '../store/types.js';

export type { EdhocKudos };

/** Serves EDHOC on `server` in front of the security it has; `log` (-v) gets one line per context made. */
export function attachEdhocResponder(
  server: CoapServer,
  edhoc: EdhocCredentials,
  log?: (line: string) => void,
  kudos?: EdhocKudos,
  shared?: { store: ContextStore; onError: (error: Error) => void },
): EdhocResponder {
  return attachResponder(server, {
    responder: edhocResponderConfig(edhoc),
    ...(edhoc.maxContexts !== undefined ? { maxContexts: edhoc.maxContexts } : {}),
    ...(edhoc.activeContexts !== undefined ? { activeContexts: edhoc.activeContexts } : {}),
    ...(log ? { log } : {}),
    ...(kudos ? { kudos } : {}),
    ...(shared ? { store: { contexts: shared.store, onError: shared.onError, grantNamed: (name) => edhoc.peerEntries.find((entry) => entry.name === name)?.grant } } : {}),
  });
}
