/**
 * The external_aad of Group OSCORE (draft-ietf-core-oscore-groupcomm §3.4, Figure 2), used for
 * encryption in both modes and for the countersignature of the group mode (§3.1, RFC 9338 §3.3).
 */
import { encodeCbor } from '../cose/cbor.js';
import type { GroupAlgorithms } from './common.js';

export interface AadInput {
  readonly algorithms: GroupAlgorithms;
  readonly requestKid: Uint8Array;
  readonly requestPiv: Uint8Array;
  /** The Class I options, encoded like the options of a plaintext (deltas among themselves); h'' when none. */
  readonly classIOptions: Uint8Array;
  readonly requestKidContext: Uint8Array;
  /** The OSCORE option value of the message being protected, final before encryption (§3.4). */
  readonly oscoreOption: Uint8Array;
  /** The sender's credential as distributed (h'' for a deterministic request, cacheable-oscore §3.4.2). */
  readonly senderCredential: Uint8Array;
  readonly gmCredential: Uint8Array;
}

/** aad_array = [1, [alg_aead, alg_group_enc, alg_signature, alg_pairwise_key_agreement], request_kid, request_piv, options, request_kid_context, OSCORE_option, sender_cred, gm_cred]. */
export function aadArray(input: AadInput): Uint8Array {
  const a = input.algorithms;
  return encodeCbor([
    1,
    [a.aead ?? null, a.groupEncryption ?? null, a.signature ?? null, a.pairwiseKeyAgreement ?? null],
    input.requestKid,
    input.requestPiv,
    input.classIOptions,
    input.requestKidContext,
    input.oscoreOption,
    input.senderCredential,
    input.gmCredential,
  ]);
}

/** The AEAD's additional data: Enc_structure = ["Encrypt0", h'', external_aad] (RFC 9052 §5.3). */
export const encStructure = (aad: Uint8Array): Uint8Array => encodeCbor(['Encrypt0', new Uint8Array(0), aad]);

/**
 * What the countersignature signs (RFC 9338 §3.3, Countersignature0 version 2):
 * ["CounterSignature0", body_protected h'', sign_protected h'', external_aad, ciphertext].
 */
export const countersignStructure = (aad: Uint8Array, ciphertext: Uint8Array): Uint8Array =>
  encodeCbor(['CounterSignature0', new Uint8Array(0), new Uint8Array(0), aad, ciphertext]);
