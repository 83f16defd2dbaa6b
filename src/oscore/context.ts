/**
 * Security context derivation (RFC 8613 §3.2) and the AEAD nonce (§5.2).
 */
import { DEFAULT_AEAD, DEFAULT_HKDF, aeadAlgorithm, hkdfAlgorithm } from './algorithms.js';
import { assembleContext, checkContextInputs, derivationPlan, type HkdfCall } from './context-rules.js';

export { equalBytes, hkdfInfo, nonce } from './context-rules.js';

export interface ContextParams {
  masterSecret: Uint8Array;
  /** Default: the empty byte string (§3.2). */
  masterSalt?: Uint8Array;
  idContext?: Uint8Array;
  senderId: Uint8Array;
  recipientId: Uint8Array;
  /** COSE id; default 10, AES-CCM-16-64-128 (§3.2). */
  aead?: number;
  /** COSE id; default -10, HKDF SHA-256 (§3.2). */
  hkdf?: number;
}

/** What protecting needs (the Sender Context plus the Common Context parts it uses). */
export interface SenderParams {
  senderId: Uint8Array;
  senderKey: Uint8Array;
  commonIv: Uint8Array;
  /** COSE AEAD id. */
  aead: number;
  /** The ID Context, sent as 'kid context' when the caller asks for it (§5.1). */
  idContext?: Uint8Array;
}

/** What verifying needs (the Recipient Context plus the Common Context parts it uses). */
export interface RecipientParams {
  recipientId: Uint8Array;
  recipientKey: Uint8Array;
  commonIv: Uint8Array;
  aead: number;
  idContext?: Uint8Array;
}

export interface DerivedContext {
  aead: number;
  hkdf: number;
  senderId: Uint8Array;
  recipientId: Uint8Array;
  idContext: Uint8Array | undefined;
  senderKey: Uint8Array;
  recipientKey: Uint8Array;
  commonIv: Uint8Array;
  sender: SenderParams;
  recipient: RecipientParams;
}

/**
 * Every check deriveContext makes, without deriving: a context that holds its keys back until
 * first use (security-context.ts) still refuses bad parameters when it is made.
 */
export function checkContextParams(params: ContextParams): void {
  const alg = aeadAlgorithm(params.aead ?? DEFAULT_AEAD);
  hkdfAlgorithm(params.hkdf ?? DEFAULT_HKDF);
  checkContextInputs(params, alg);
}

export function deriveContext(params: ContextParams): DerivedContext {
  checkContextParams(params);
  const alg = aeadAlgorithm(params.aead ?? DEFAULT_AEAD);
  const hkdf = hkdfAlgorithm(params.hkdf ?? DEFAULT_HKDF);
  const plan = derivationPlan(params, alg, hkdf.id);
  const derive = (call: HkdfCall): Uint8Array => hkdf.derive(call.salt, call.ikm, call.info, call.length);
  return assembleContext(plan, derive(plan.senderKey), derive(plan.recipientKey), derive(plan.commonIv));
}
