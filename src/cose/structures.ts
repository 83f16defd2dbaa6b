/** The COSE structures signed or authenticated (struct-13 §4.4, §5.3): CBOR only, shared with the browser build. */
import { encodeCbor } from './cbor.js';

/**
 * Sig_structure for COSE_Sign1 (struct-13 §4.4):
 * ["Signature1", body_protected (bstr), external_aad (bstr), payload (bstr)].
 */
export const sigStructure1 = (protectedHeader: Uint8Array, externalAad: Uint8Array, payload: Uint8Array): Uint8Array =>
  encodeCbor(['Signature1', protectedHeader, externalAad, payload]);

/** Enc_structure for COSE_Encrypt0: ["Encrypt0", protected (bstr), external_aad (bstr)]. */
export const encStructure0 = (protectedHeader: Uint8Array, externalAad: Uint8Array): Uint8Array =>
  encodeCbor(['Encrypt0', protectedHeader, externalAad]);
