/** The online Group Manager (RFC 9594, draft-ietf-ace-key-groupcomm-oscore): the core, its CoAP binding, the joining member's side. */
export * from './key-material.js';
export * from './member-client.js';
export * from './online-manager.js';
export * from './parameters.js';
export * from './resources.js';
export * from './config.js';
export * from './pubsub-parameters.js';
export * from './topic-groups.js';
export * from './topic-member.js';
export * from './topic-resources.js';
export * from './topic-config.js';
export * from './admin.js';
