/** ACE (RFC 9200) with the OSCORE profile (RFC 9203): tokens, the Authorization Server, the resource server and client sides. */
export * from './ace-cbor.js';
export * from './as-resources.js';
export * from './as-state.js';
export * from './authorization-server.js';
export * from './client.js';
export * from './config.js';
export * from './oscore-profile.js';
export * from './resource-server.js';
export * from './scope-format.js';
export * from './scope-guard.js';
export * from './token.js';
export * from './edhoc-client.js';
export * from './edhoc-tokens.js';
export * from './introspection.js';
