/**
 * TLS 1.2 PRF with P_SHA256 (RFC 5246 §5) and the derived secrets used by the DTLS 1.2 handshake:
 * master secret (RFC 5246 §8.1), extended master secret (RFC 7627 §4), key block (RFC 5246 §6.3),
 * Finished verify_data (RFC 5246 §7.4.9), and PSK premaster secrets (RFC 4279 §2, RFC 5489 §2).
 */
import { createHmac, createHash } from 'node:crypto';

/** P_hash(secret, seed) = HMAC(secret, A(1) + seed) + HMAC(secret, A(2) + seed) + ..., A(0)=seed. */
export function pSha256(secret: Uint8Array, seed: Uint8Array, length: number): Buffer {
  const out: Buffer[] = [];
  let produced = 0;
  let a: Buffer = Buffer.from(seed);
  while (produced < length) {
    a = createHmac('sha256', secret).update(a).digest();
    const block = createHmac('sha256', secret).update(a).update(seed).digest();
    out.push(block);
    produced += block.length;
  }
  return Buffer.concat(out).subarray(0, length);
}

/** PRF(secret, label, seed) = P_SHA256(secret, label + seed). */
export function prf(secret: Uint8Array, label: string, seed: Uint8Array, length: number): Buffer {
  return pSha256(secret, Buffer.concat([Buffer.from(label, 'ascii'), seed]), length);
}

export function sha256(data: Uint8Array | Uint8Array[]): Buffer {
  const h = createHash('sha256');
  if (Array.isArray(data)) for (const d of data) h.update(d);
  else h.update(data);
  return h.digest();
}

export function masterSecret(premaster: Uint8Array, clientRandom: Uint8Array, serverRandom: Uint8Array): Buffer {
  return prf(premaster, 'master secret', Buffer.concat([clientRandom, serverRandom]), 48);
}

/** RFC 7627 §4: session_hash = Hash(handshake_messages) up to and including ClientKeyExchange. */
export function extendedMasterSecret(premaster: Uint8Array, sessionHash: Uint8Array): Buffer {
  return prf(premaster, 'extended master secret', sessionHash, 48);
}

export interface KeyBlock {
  clientWriteKey: Buffer;
  serverWriteKey: Buffer;
  clientWriteIv: Buffer;
  serverWriteIv: Buffer;
}

/** RFC 5246 §6.3 for AEAD suites (mac_key_length = 0); seed is server_random + client_random. */
export function keyBlock(
  master: Uint8Array,
  clientRandom: Uint8Array,
  serverRandom: Uint8Array,
  keyLength: number,
  fixedIvLength: number,
): KeyBlock {
  const kb = prf(master, 'key expansion', Buffer.concat([serverRandom, clientRandom]), 2 * keyLength + 2 * fixedIvLength);
  let p = 0;
  const take = (n: number): Buffer => {
    const v = Buffer.from(kb.subarray(p, p + n));
    p += n;
    return v;
  };
  return {
    clientWriteKey: take(keyLength),
    serverWriteKey: take(keyLength),
    clientWriteIv: take(fixedIvLength),
    serverWriteIv: take(fixedIvLength),
  };
}

export function finishedVerifyData(master: Uint8Array, label: 'client finished' | 'server finished', handshakeHash: Uint8Array): Buffer {
  return prf(master, label, handshakeHash, 12);
}

/** RFC 4279 §2: premaster = uint16 N, N zero octets, uint16 N, psk. */
export function pskPremaster(psk: Uint8Array): Buffer {
  const n = psk.length;
  const b = Buffer.alloc(4 + 2 * n);
  b.writeUInt16BE(n, 0);
  b.writeUInt16BE(n, 2 + n);
  Buffer.from(psk).copy(b, 4 + n);
  return b;
}

/** RFC 5489 §2: premaster = other_secret<0..2^16-1> (the ECDH Z) || psk<0..2^16-1>. */
export function ecdhePskPremaster(z: Uint8Array, psk: Uint8Array): Buffer {
  const b = Buffer.alloc(4 + z.length + psk.length);
  b.writeUInt16BE(z.length, 0);
  Buffer.from(z).copy(b, 2);
  b.writeUInt16BE(psk.length, 2 + z.length);
  Buffer.from(psk).copy(b, 4 + z.length);
  return b;
}
