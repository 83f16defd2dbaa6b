/**
 * The OSCORE profile's key establishment (RFC 9203 §4.3), shared by the client and the RS: the
 * Master Salt from the AS's salt and the two nonces, the OSCORE Security Context from the
 * OSCORE_Input_Material, and the nonces and Recipient IDs each side contributes.
 */
import { randomBytes } from 'node:crypto';
import { concatBytes, encodeCbor } from '../cose/cbor.js';
import { aeadAlgorithm } from '../oscore/algorithms.js';
import { equalBytes } from '../oscore/context.js';
import { OscoreSecurityContext, VolatileSequence } from '../oscore/security-context.js';
import type { OscoreInputMaterial } from './token.js';

/** §4.1, §4.2: "The use of a 64-bit long random number as the nonce's value is RECOMMENDED". */
export const NONCE_LENGTH = 8;
export const newNonce = (): Uint8Array => Uint8Array.from(randomBytes(NONCE_LENGTH));

/**
 * §4.3 Fig. 13: "Master Salt = salt | N1 | N2, where | denotes byte string concatenation, salt is
 * the CBOR byte string received from the AS ... and N1 and N2 are the two nonces encoded as CBOR
 * byte strings". Without a salt from the AS, salt is the empty byte string (h'', CBOR 0x40), the
 * default of RFC 8613 §3.2.
 */
export function masterSalt(salt: Uint8Array | undefined, nonce1: Uint8Array, nonce2: Uint8Array): Uint8Array {
  return concatBytes(encodeCbor(salt ?? new Uint8Array(0)), encodeCbor(nonce1), encodeCbor(nonce2));
}

/**
 * §4.3 Fig. 14, the JSON interactions' Master Salt: base64 of the same three values, each prefixed
 * by its length in one byte ("the nonces and input salt have a maximum size of 255 bytes").
 */
export function masterSaltForJson(salt: Uint8Array | undefined, nonce1: Uint8Array, nonce2: Uint8Array): string {
  const parts = [salt ?? new Uint8Array(0), nonce1, nonce2];
  if (parts.some((p) => p.length > 255)) throw new RangeError('with JSON, the salt and nonces have at most 255 bytes');
  return Buffer.from(concatBytes(...parts.flatMap((p) => [Uint8Array.of(p.length), p]))).toString('base64');
}

export class OscoreProfileError extends Error {
  override readonly name = 'OscoreProfileError';
}

export interface ProfileExchange {
  readonly material: OscoreInputMaterial;
  readonly nonce1: Uint8Array;
  readonly nonce2: Uint8Array;
  /** ace_client_recipientid (ID1): the client's Recipient ID, the RS's Sender ID. */
  readonly clientRecipientId: Uint8Array;
  /** ace_server_recipientid (ID2): the RS's Recipient ID, the client's Sender ID. */
  readonly serverRecipientId: Uint8Array;
}

/**
 * The Security Context of one side (§4.3). "if ace_client_recipientid equals
 * ace_server_recipientid (and as a consequence, the Sender and Recipient Keys derived would be
 * equal ...), then the client MUST stop the exchange and MUST NOT derive the security context" —
 * OscoreProfileError; the RS never picks such an ID2. `name` is what handlers see as the peer.
 */
export function profileContext(side: 'client' | 'server', exchange: ProfileExchange, name: string): OscoreSecurityContext {
  const { material, clientRecipientId: id1, serverRecipientId: id2 } = exchange;
  if (equalBytes(id1, id2)) throw new OscoreProfileError('ace_client_recipientid equals ace_server_recipientid');
  const longest = aeadAlgorithm(material.alg ?? 10).maxIdLength;
  if (id1.length > longest || id2.length > longest) throw new OscoreProfileError(`a Recipient ID is longer than the ${longest} bytes this AEAD allows`);
  return new OscoreSecurityContext(
    {
      masterSecret: material.ms,
      masterSalt: masterSalt(material.salt, exchange.nonce1, exchange.nonce2),
      ...(material.contextId !== undefined ? { idContext: material.contextId } : {}),
      senderId: side === 'client' ? id2 : id1,
      recipientIds: [side === 'client' ? id1 : id2],
      ...(material.alg !== undefined ? { aead: material.alg } : {}),
      ...(material.hkdf !== undefined ? { hkdf: material.hkdf } : {}),
      name,
    },
    // A fresh context per exchange (new nonces, new keys): its numbering starts at 0 and is never
    // persisted, because after a restart the client posts the token again and gets new keys (§4.1).
    new VolatileSequence(0),
  );
}
