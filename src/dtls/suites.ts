/**
 * Cipher suites supported by the engine, all AEAD with the SHA-256 PRF. The AES-128 suites use a
 * 16-byte key, 4-byte implicit IV and 8-byte explicit nonce (RFC 6655 §3, RFC 7251 §2, RFC 5487,
 * RFC 8442); the ChaCha20-Poly1305 suites a 32-byte key and 12-byte IV, no explicit nonce (RFC 7905).
 */
import type { AeadKind } from './cipher.js';

export type KeyExchange = 'PSK' | 'ECDHE_ECDSA' | 'ECDHE_PSK';

export interface CipherSuite {
  readonly id: number;
  readonly name: string;
  readonly keyExchange: KeyExchange;
  readonly aead: AeadKind;
}

export const TLS_PSK_WITH_AES_128_CCM_8 = 0xc0a8;
export const TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 = 0xc0ae;
export const TLS_PSK_WITH_AES_128_GCM_SHA256 = 0x00a8;
export const TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256 = 0xd003;
export const TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 = 0xc02b;
/** RFC 7905. Not in the RFC 7925 profile; offered only when configured explicitly. */
export const TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xccac;
export const TLS_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xccab;
/** RFC 5746 §3.3 signalling cipher suite value. */
export const TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00ff;

export const CIPHER_SUITES: readonly CipherSuite[] = [
  { id: TLS_PSK_WITH_AES_128_CCM_8, name: 'TLS_PSK_WITH_AES_128_CCM_8', keyExchange: 'PSK', aead: 'CCM_8' },
  { id: TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, name: 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8', keyExchange: 'ECDHE_ECDSA', aead: 'CCM_8' },
  { id: TLS_PSK_WITH_AES_128_GCM_SHA256, name: 'TLS_PSK_WITH_AES_128_GCM_SHA256', keyExchange: 'PSK', aead: 'GCM' },
  { id: TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256, name: 'TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256', keyExchange: 'ECDHE_PSK', aead: 'CCM_8' },
  { id: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, name: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', keyExchange: 'ECDHE_ECDSA', aead: 'GCM' },
  { id: TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256, name: 'TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256', keyExchange: 'ECDHE_PSK', aead: 'CHACHA20_POLY1305' },
  { id: TLS_PSK_WITH_CHACHA20_POLY1305_SHA256, name: 'TLS_PSK_WITH_CHACHA20_POLY1305_SHA256', keyExchange: 'PSK', aead: 'CHACHA20_POLY1305' },
];

export function suiteById(id: number): CipherSuite | undefined {
  return CIPHER_SUITES.find((s) => s.id === id);
}

/**
 * RFC 7925 mandates TLS_PSK_WITH_AES_128_CCM_8 (PSK) and TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (RPK);
 * defaults are the AES-128 suites, CCM_8 first. ChaCha20-Poly1305 suites must be asked for.
 */
export const DEFAULT_SUITES: readonly number[] = [
  TLS_PSK_WITH_AES_128_CCM_8,
  TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
  TLS_PSK_WITH_AES_128_GCM_SHA256,
  TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256,
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
];
