/** COSE (draft-ietf-cose-rfc8152bis-struct-13, -algs-11), CWT claims sets (RFC 8392) and strict CBOR. */
export * from './algorithms.js';
export * from './cbor.js';
export * from './cwt.js';
export * from './ecdh.js';
export * from './encrypt.js';
export * from './key.js';
export * from './sign.js';
