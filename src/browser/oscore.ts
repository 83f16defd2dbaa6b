/**
 * OSCORE (RFC 8613) for the browser build: the same transforms as src/oscore/protect.ts and the
 * same context derivation as src/oscore/context.ts — their rules are the crypto-free halves in
 * oscore/cose-object.ts and oscore/context-rules.ts — with the AEAD and the HKDF of Web Crypto
 * (crypto/web-crypto.ts), which are asynchronous. No Node built-ins on this path.
 */
import type { CoapMessage } from '../coap/message.js';
import { WEB_AEADS, WEB_HKDFS, type AsyncAead, type AsyncHkdf } from '../crypto/web-crypto.js';
import type { ContextParams, DerivedContext, RecipientParams, SenderParams } from '../oscore/context.js';
import { assembleContext, checkContextInputs, derivationPlan, type HkdfCall } from '../oscore/context-rules.js';
import {
  type AeadParameters,
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
} from '../oscore/cose-object.js';
import { OscoreConfigError } from '../oscore/errors.js';

/** RFC 8613 §3.2: AES-CCM-16-64-128 and HKDF SHA-256 when not preestablished. */
const DEFAULT_AEAD = 10;
const DEFAULT_HKDF = -10;

/** An AEAD of crypto/web-crypto.ts with OSCORE's ID limit (§3.3: nonce length − 6). */
export interface BrowserAead extends AsyncAead, AeadParameters {}

const AEADS: ReadonlyMap<number, BrowserAead> = new Map(WEB_AEADS.map((a) => [a.id, { ...a, maxIdLength: a.nonceLength - 6 }]));

/** The browser's AEAD by COSE id; an algorithm Web Crypto cannot do is an OscoreConfigError naming those it can. */
export function browserAead(id: number): BrowserAead {
  const found = AEADS.get(id);
  if (found === undefined) {
    const supported = [...AEADS.values()].map((a) => `${a.name} (${a.id})`).join(', ');
    throw new OscoreConfigError(`OSCORE AEAD algorithm ${id} is not available in the browser build (Web Crypto); supported: ${supported}`);
  }
  return found;
}

function browserHkdf(id: number): AsyncHkdf {
  const found = WEB_HKDFS.find((h) => h.id === id);
  if (found === undefined) throw new OscoreConfigError(`OSCORE HKDF algorithm ${id} is not available in the browser build; supported: ${WEB_HKDFS.map((h) => `${h.name} (${h.id})`).join(', ')}`);
  return found;
}

/** §3.2: the Sender and Recipient Keys and the Common IV, as deriveContext of src/oscore/context.ts. */
export async function deriveContextAsync(params: ContextParams): Promise<DerivedContext> {
  const alg = browserAead(params.aead ?? DEFAULT_AEAD);
  const hkdf = browserHkdf(params.hkdf ?? DEFAULT_HKDF);
  checkContextInputs(params, alg);
  const plan = derivationPlan(params, alg, hkdf.id);
  const derive = (call: HkdfCall): Promise<Uint8Array> => hkdf.derive(call.salt, call.ikm, call.info, call.length);
  const [senderKey, recipientKey, commonIv] = await Promise.all([derive(plan.senderKey), derive(plan.recipientKey), derive(plan.commonIv)]);
  return assembleContext(plan, senderKey, recipientKey, commonIv);
}

/** §8.1 (protectRequest of src/oscore/protect.ts). */
export async function protectRequestAsync(
  request: CoapMessage,
  sender: SenderParams,
  sequenceNumber: number,
  options: ProtectRequestOptions = {},
): Promise<{ message: CoapMessage; binding: RequestBinding }> {
  const alg = browserAead(sender.aead);
  const parts = requestToSeal(request, sender, sequenceNumber, options);
  return sealedRequest(parts, await alg.seal(parts.key, parts.nonce, parts.aad, parts.plaintext));
}

/** §8.2 (unprotectRequest of src/oscore/protect.ts): the replay check is the caller's. */
export async function unprotectRequestAsync(
  request: CoapMessage,
  findRecipient: (kid: Uint8Array, kidContext: Uint8Array | undefined) => RecipientParams | undefined,
  options: UnprotectOptions = {},
): Promise<UnprotectRequestResult> {
  const parts = requestToOpen(request, findRecipient, browserAead);
  if (!parts.ok) return parts;
  return openedRequest(parts, await browserAead(parts.aead).open(parts.key, parts.nonce, parts.aad, parts.ciphertext), options);
}

/** §8.3 (protectResponse of src/oscore/protect.ts). */
export async function protectResponseAsync(
  response: CoapMessage,
  sender: SenderParams,
  binding: RequestBinding,
  options: ProtectResponseOptions = {},
): Promise<CoapMessage> {
  const alg = browserAead(sender.aead);
  const parts = responseToSeal(response, sender, binding, options);
  return sealedResponse(parts, await alg.seal(parts.key, parts.nonce, parts.aad, parts.plaintext));
}

/** §8.4 (unprotectResponse of src/oscore/protect.ts): Notification Number checks are the caller's. */
export async function unprotectResponseAsync(
  response: CoapMessage,
  recipient: RecipientParams,
  binding: RequestBinding,
  options: UnprotectResponseOptions = {},
): Promise<UnprotectResponseResult> {
  const alg = browserAead(recipient.aead);
  const parts = responseToOpen(response, recipient, binding);
  if (!parts.ok) return parts;
  return openedResponse(parts, await alg.open(parts.key, parts.nonce, parts.aad, parts.ciphertext), binding, options);
}
