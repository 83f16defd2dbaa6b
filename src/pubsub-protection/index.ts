/** End-to-end protected publications (draft-ietf-ace-coap-pubsub-profile §6) and their offline key distribution. */
export * from './key-material.js';
export * from './key-epochs.js';
export * from './key-distribution.js';
export * from './publication.js';
export * from './publisher-session.js';
