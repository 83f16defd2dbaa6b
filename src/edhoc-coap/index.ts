/**
 * EDHOC over CoAP (RFC 9528 App. A.2) and the EDHOC + OSCORE request (RFC 9668): the server's
 * EDHOC resource and contexts, the client's on-demand EDHOC, and the wire helpers.
 */
export { EdhocServer, type EdhocServerOptions, type SharedEdhocContexts } from './server.js';
export { StoredEdhocContexts, type StoredEdhocContextsOptions } from './stored-contexts.js';
export { attachEdhocResponder, type EdhocResponder, type EdhocResponderOptions, type EdhocKudos } from './responder.js';
export { EdhocClientSecurity, EdhocRequestError, type EdhocClientOptions } from './client-security.js';
export { EdhocClient, type EdhocClientConfig } from './origins.js';
export { postOverClient, postOverEndpoint, exchangeMessages12, EdhocTransferError, type EdhocPost, type EdhocReply } from './handshake.js';
export { edhocOscoreContext, oscoreHkdfFor, ConnectionIdentifiers, type EdhocContextOptions } from './oscore-context.js';
export { EDHOC_PATH, EDHOC_RESOURCE_TYPE, splitPrefixed, splitCombinedPayload, combinePayload, prefixNewSession, prefixWithIdentifier, edhocErrorResponse } from './transfer.js';
export { kudosSessionForEdhoc } from './kudos-session.js';
