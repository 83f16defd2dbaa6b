/**
 * The Common Context of a Group OSCORE security context (draft-ietf-core-oscore-groupcomm §2.1,
 * §2.3) and the derivations that use it: Sender/Recipient Keys, Common IV, Signature Encryption
 * Key (§2.1.9), the nonce (§3.3), the countersignature keystream (§4.2) and pairwise keys (§2.5.1).
 * All pure functions of their inputs.
 */
import { coseAead, hkdfByHmac, type CoseAeadAlgorithm, type HkdfByHmac } from '../cose/algorithms.js';
import { concatBytes, encodeCbor } from '../cose/cbor.js';
import { CoseSignAlg } from '../cose/sign.js';
import { nonce as oscoreNonce } from '../oscore/context.js';
import { OscoreConfigError } from '../oscore/errors.js';

/** COSE ids of the Pairwise Key Agreement Algorithms §2.1.10 names. */
export const PairwiseKeyAgreement = { ECDH_SS_HKDF_256: -27, ECDH_SS_HKDF_512: -28 } as const;

/** Each algorithm unset (undefined) disables what needs it: group mode without groupEncryption and signature, pairwise mode without aead and pairwiseKeyAgreement. */
export interface GroupAlgorithms {
  /** AEAD Algorithm (§2.1.1), for the pairwise mode. */
  readonly aead?: number;
  /** HKDF Algorithm as its COSE HMAC id (§2.1.2): 5 = HMAC 256/256, i.e. HKDF SHA-256. */
  readonly hkdf: number;
  /** Group Encryption Algorithm (§2.1.7); only AEADs here (A128CTR and friends are not implemented). */
  readonly groupEncryption?: number;
  /** Signature Algorithm (§2.1.8): EdDSA (-8) or ES256 (-7). */
  readonly signature?: number;
  /** Pairwise Key Agreement Algorithm (§2.1.10): -27 with HKDF SHA-256, -28 with SHA-512. */
  readonly pairwiseKeyAgreement?: number;
}

export interface GroupCommonInput {
  readonly masterSecret: Uint8Array;
  /** Default: the empty byte string. */
  readonly masterSalt?: Uint8Array;
  /** The ID Context: the Group Identifier (§2.1.3). */
  readonly gid: Uint8Array;
  readonly algorithms: GroupAlgorithms;
  /** The Group Manager's authentication credential (§2.1.6), as distributed. */
  readonly gmCredential: Uint8Array;
}

export interface GroupCommonContext extends GroupCommonInput {
  readonly masterSalt: Uint8Array;
  readonly hkdf: HkdfByHmac;
  /** The algorithm Sender/Recipient Keys are derived for (§2.3): the Group Encryption Algorithm if set, else the AEAD Algorithm. */
  readonly keyAlgorithm: CoseAeadAlgorithm;
  readonly groupEncryption: CoseAeadAlgorithm | undefined;
  readonly pairwiseAead: CoseAeadAlgorithm | undefined;
  /** §2.1.4: as long as the longest nonce of the algorithms set. */
  readonly commonIv: Uint8Array;
  /** §2.1.9; present when the group mode is. */
  readonly signatureEncryptionKey: Uint8Array | undefined;
  /** §2.2: the shortest nonce of the algorithms set, minus 6. */
  readonly maxIdLength: number;
  readonly groupMode: boolean;
  readonly pairwiseMode: boolean;
}

const SIGNATURES = new Set<number>([CoseSignAlg.EdDSA, CoseSignAlg.ES256, CoseSignAlg.ES384, CoseSignAlg.ES512]);

export function deriveCommonContext(input: GroupCommonInput): GroupCommonContext {
  const { algorithms } = input;
  if (input.masterSecret.length === 0) throw new OscoreConfigError('Group OSCORE Master Secret is empty');
  const hkdf = hkdfByHmac(algorithms.hkdf);
  const groupEncryption = algorithms.groupEncryption === undefined ? undefined : coseAead(algorithms.groupEncryption);
  const pairwiseAead = algorithms.aead === undefined ? undefined : coseAead(algorithms.aead);
  const groupMode = groupEncryption !== undefined && algorithms.signature !== undefined;
  const pairwiseMode = pairwiseAead !== undefined && algorithms.pairwiseKeyAgreement !== undefined;
  if (algorithms.signature !== undefined && !SIGNATURES.has(algorithms.signature)) {
    throw new OscoreConfigError(`unsupported Signature Algorithm ${algorithms.signature}`);
  }
  if (algorithms.pairwiseKeyAgreement !== undefined) {
    // §2.1.10: the key agreement must use the group's own HKDF.
    const expected = algorithms.hkdf === 5 ? PairwiseKeyAgreement.ECDH_SS_HKDF_256 : algorithms.hkdf === 7 ? PairwiseKeyAgreement.ECDH_SS_HKDF_512 : undefined;
    if (algorithms.pairwiseKeyAgreement !== expected) {
      throw new OscoreConfigError(`Pairwise Key Agreement Algorithm ${algorithms.pairwiseKeyAgreement} does not match HKDF ${algorithms.hkdf} (§2.1.10)`);
    }
  }
  if (!groupMode && !pairwiseMode) throw new OscoreConfigError('a Group OSCORE context needs the group mode, the pairwise mode or both');
  const keyAlgorithm = (groupEncryption ?? pairwiseAead)!;
  const nonceLengths = [groupEncryption?.nonceLength, pairwiseAead?.nonceLength].filter((n): n is number => n !== undefined);
  const masterSalt = input.masterSalt ?? new Uint8Array(0);
  const expand = (id: Uint8Array, type: string, length: number, alg = keyAlgorithm.id): Uint8Array =>
    hkdf.derive(masterSalt, input.masterSecret, encodeCbor([id, input.gid, alg, type, length]), length);
  const commonIv = expand(new Uint8Array(0), 'IV', Math.max(...nonceLengths));
  // §2.1.9: id h'', alg_aead the Group Encryption Algorithm, type "SEKey", L its key length.
  const signatureEncryptionKey = groupMode ? expand(new Uint8Array(0), 'SEKey', groupEncryption!.keyLength, groupEncryption!.id) : undefined;
  return {
    ...input,
    masterSalt,
    hkdf,
    keyAlgorithm,
    groupEncryption,
    pairwiseAead,
    commonIv,
    signatureEncryptionKey,
    maxIdLength: Math.min(...nonceLengths) - 6,
    groupMode,
    pairwiseMode,
  };
}

/** A Sender Key (own ID) or Recipient Key (the peer's Sender ID): RFC 8613 §3.2.1 with §2.3's alg_aead. */
export function deriveEndpointKey(common: GroupCommonContext, id: Uint8Array): Uint8Array {
  if (id.length > common.maxIdLength) throw new OscoreConfigError(`Sender ID of ${id.length} bytes exceeds ${common.maxIdLength} (§2.2)`);
  const alg = common.keyAlgorithm;
  return common.hkdf.derive(common.masterSalt, common.masterSecret, encodeCbor([id, common.gid, alg.id, 'Key', alg.keyLength]), alg.keyLength);
}

/** §3.3: RFC 8613's nonce, XORed with the first `length` bytes of the Common IV. */
export const groupNonce = (common: GroupCommonContext, length: number, id: Uint8Array, piv: Uint8Array): Uint8Array =>
  oscoreNonce(common.commonIv.subarray(0, length), id, piv);

/**
 * §4.2: KEYSTREAM = HKDF(salt = PIV, IKM = Signature Encryption Key, info = [id, id_context,
 * type, L], L), with id the Sender ID that generated the PIV, id_context the Gid used to protect
 * the message, type true for a request, L the signature length.
 */
export function signatureKeystream(common: GroupCommonContext, piv: Uint8Array, id: Uint8Array, idContext: Uint8Array, isRequest: boolean, length: number): Uint8Array {
  if (common.signatureEncryptionKey === undefined) throw new OscoreConfigError('the group mode is not set up in this context');
  return common.hkdf.derive(piv, common.signatureEncryptionKey, encodeCbor([id, idContext, isRequest, length]), length);
}

/**
 * §2.5.1: Pairwise Sender Key = HKDF(Sender Key, IKM-Sender, info, L) and Pairwise Recipient Key =
 * HKDF(Recipient Key, IKM-Recipient, info, L), info and L as RFC 8613 §3.2.1 with the AEAD
 * Algorithm; `id` is the Sender ID of the key's owner (ours for the sender key, the peer's for the
 * recipient key). IKM is built by the caller (pairwiseIkm, or the hash of a deterministic request).
 */
export function derivePairwiseKey(common: GroupCommonContext, baseKey: Uint8Array, ikm: Uint8Array, id: Uint8Array): Uint8Array {
  const aead = common.pairwiseAead;
  if (aead === undefined) throw new OscoreConfigError('the pairwise mode is not set up in this context');
  return common.hkdf.derive(baseKey, ikm, encodeCbor([id, common.gid, aead.id, 'Key', aead.keyLength]), aead.keyLength);
}

/** IKM-Sender = own cred | peer cred | shared secret; IKM-Recipient = peer cred | own cred | shared secret (§2.5.1). */
export const pairwiseIkm = (firstCredential: Uint8Array, secondCredential: Uint8Array, sharedSecret: Uint8Array): Uint8Array =>
  concatBytes(firstCredential, secondCredential, sharedSecret);
