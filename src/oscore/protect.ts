/**
 * OSCORE message protection (RFC 8613 §4, §5, §6, §8) as pure transforms of CoapMessage values,
 * with Node's synchronous AEADs (oscore/algorithms.ts). The rules before and after the AEAD call
 * are cose-object.ts's, shared with the browser build's asynchronous WebCrypto path.
 *
 * - Nothing here performs I/O or keeps state: the caller supplies the sequence number, keeps the
 *   request binding (§8: the association Token → {context, request kid and Partial IV}) and runs
 *   the replay window (replay.ts).
 * - Input messages are never mutated. Network input never throws: failures are `{ ok: false }`.
 *   Local misuse (an unusable context, an exhausted sequence number, an unparsable Proxy-Uri of our
 *   own request) throws.
 * - Layers nest (draft-ietf-core-oscore-capable-proxies §2): a message that already carries an
 *   OSCORE option can be protected again; by default the inner layer's OSCORE option is Class E,
 *   so it and its ciphertext payload end up inside the outer layer's ciphertext. RFC 8613 §4.1.3.7
 *   ("Nested use of OSCORE is not supported") is the rule this draft updates.
 */
import type { CoapMessage } from '../coap/message.js';
import { aeadAlgorithm } from './algorithms.js';
import type { RecipientParams, SenderParams } from './context.js';
import {
  type ProtectRequestOptions,
  type ProtectResponseOptions,
  type RequestBinding,
  type UnprotectOptions,
  type UnprotectRequestResult,
  type UnprotectResponseOptions,
  type UnprotectResponseResult,
  openedRequest,
  openedResponse,
  requestToOpen,
  requestToSeal,
  responseToOpen,
  responseToSeal,
  sealedRequest,
  sealedResponse,
} from './cose-object.js';

export {
  type AeadParameters,
  type ClassOf,
  type OpenInput,
  type ProtectRequestOptions,
  type ProtectResponseOptions,
  type RequestBinding,
  type Role,
  type SealInput,
  type Split,
  type UnprotectOptions,
  type UnprotectRequestResult,
  type UnprotectResponseOptions,
  type UnprotectResponseResult,
  DECRYPTION_FAILED,
  additionalData,
  decodePlaintext,
  defaultClassOf,
  encodePlaintext,
  errorResponseParts,
  externalAad,
  mergeOptions,
  outerRequest,
  splitOptions,
  withOscoreOption,
} from './cose-object.js';

/** §8.1. Throws SequenceNumberExhausted past 2^40-1, OscoreConfigError/OscoreProtectError on misuse. */
export function protectRequest(
  request: CoapMessage,
  sender: SenderParams,
  sequenceNumber: number,
  options: ProtectRequestOptions = {},
): { message: CoapMessage; binding: RequestBinding } {
  const alg = aeadAlgorithm(sender.aead);
  const parts = requestToSeal(request, sender, sequenceNumber, options);
  return sealedRequest(parts, alg.seal(parts.key, parts.nonce, parts.aad, parts.plaintext, parts.partialIv));
}

/**
 * §8.2 steps 1–2 and 4–7. Step 3 and the window update of step 6 are the caller's: with the
 * returned sequenceNumber, `replayWindow.accept(seq)` before acting on the request.
 */
export function unprotectRequest(
  request: CoapMessage,
  findRecipient: (kid: Uint8Array, kidContext: Uint8Array | undefined) => RecipientParams | undefined,
  options: UnprotectOptions = {},
): UnprotectRequestResult {
  const parts = requestToOpen(request, findRecipient, aeadAlgorithm);
  if (!parts.ok) return parts;
  return openedRequest(parts, aeadAlgorithm(parts.aead).open(parts.key, parts.nonce, parts.aad, parts.ciphertext, parts.partialIv), options);
}

/** §8.3 (with §8.3.1 for Observe). Throws SequenceNumberExhausted / OscoreConfigError on misuse. */
export function protectResponse(
  response: CoapMessage,
  sender: SenderParams,
  binding: RequestBinding,
  options: ProtectResponseOptions = {},
): CoapMessage {
  const alg = aeadAlgorithm(sender.aead);
  const parts = responseToSeal(response, sender, binding, options);
  return sealedResponse(parts, alg.seal(parts.key, parts.nonce, parts.aad, parts.plaintext, parts.partialIv));
}

/** §8.4 (with §8.4.2's Observe checks that need no state). Notification-number replay checks are the caller's (§7.4.1). */
export function unprotectResponse(
  response: CoapMessage,
  recipient: RecipientParams,
  binding: RequestBinding,
  options: UnprotectResponseOptions = {},
): UnprotectResponseResult {
  const alg = aeadAlgorithm(recipient.aead);
  const parts = responseToOpen(response, recipient, binding);
  if (!parts.ok) return parts;
  return openedResponse(parts, alg.open(parts.key, parts.nonce, parts.aad, parts.ciphertext, parts.partialIv), binding, options);
}
