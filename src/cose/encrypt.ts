/**
 * COSE_Encrypt0 (struct-13 §5.2, §5.3): the Enc_structure as AEAD additional data.
 */
import { coseAead, CoseError } from './algorithms.js';
import { decodeStrict, encodeCbor, isBytes, isMap, type CborValue } from './cbor.js';
import { encStructure0 } from './structures.js';

export { encStructure0 };

/** The COSE_Encrypt0 'ciphertext' (with tag) of `plaintext`. */
export function encrypt0(alg: number, key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array, protectedHeader: Uint8Array, externalAad: Uint8Array): Uint8Array {
  return coseAead(alg).seal(key, iv, encStructure0(protectedHeader, externalAad), plaintext);
}

/** The plaintext, or undefined when the tag does not verify. */
export function decrypt0(alg: number, key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array, protectedHeader: Uint8Array, externalAad: Uint8Array): Uint8Array | undefined {
  return coseAead(alg).open(key, iv, encStructure0(protectedHeader, externalAad), ciphertext);
}

export interface CoseEncrypt0 {
  readonly protectedHeader: Uint8Array;
  readonly unprotectedHeader: Map<CborValue, CborValue>;
  readonly ciphertext: Uint8Array;
}

export const encodeEncrypt0 = (e: CoseEncrypt0): Uint8Array => encodeCbor([e.protectedHeader, e.unprotectedHeader, e.ciphertext]);

export function decodeEncrypt0(bytes: Uint8Array): CoseEncrypt0 {
  const v = decodeStrict(bytes);
  if (!Array.isArray(v) || v.length !== 3) throw new CoseError('COSE_Encrypt0 must be a 3-element array');
  const [p, u, c] = v;
  if (!isBytes(p) || !isMap(u) || !isBytes(c)) throw new CoseError('malformed COSE_Encrypt0');
  return { protectedHeader: p, unprotectedHeader: u, ciphertext: c };
}
