/** TEST TOOL. A group member's forgery of another member's response (source-authentication tests and the group threat rows). */
import { ResponseCode } from '../coap/codes.js';
import { type CoapMessage, MessageType, createMessage, encodeString } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { concatBytes } from '../cose/cbor.js';
import { signBytes } from '../cose/sign.js';
import { aadArray, countersignStructure, encStructure } from '../group-oscore/aad.js';
import { deriveEndpointKey, groupNonce, signatureKeystream } from '../group-oscore/common.js';
import type { GroupSecurityContext } from '../group-oscore/context.js';
import { encodeGroupOscoreOption } from '../group-oscore/option.js';
import type { GroupRequestBinding } from '../group-oscore/protect.js';
import { encodePlaintext } from '../oscore/protect.js';

/**
 * The strongest forgery a member can make in group mode: it knows every group key, so it encrypts
 * with the victim's Sender Key and puts the victim's own credential in the external_aad; only the
 * countersignature, made with the forger's private key, can give it away.
 */
export function forgeGroupResponse(forger: GroupSecurityContext, victimId: Uint8Array, victimCredential: Uint8Array, binding: GroupRequestBinding, payload: string, token: Uint8Array): CoapMessage {
  const common = forger.common;
  const optionValue = encodeGroupOscoreOption({ group: true, kid: victimId });
  const aad = aadArray({ algorithms: common.algorithms, requestKid: binding.kid, requestPiv: binding.piv, classIOptions: new Uint8Array(0), requestKidContext: binding.kidContext, oscoreOption: optionValue, senderCredential: victimCredential, gmCredential: common.gmCredential });
  const aead = common.groupEncryption!;
  const ciphertext = aead.seal(deriveEndpointKey(common, victimId), groupNonce(common, aead.nonceLength, binding.kid, binding.piv), encStructure(aad), encodePlaintext(ResponseCode.Content, [], encodeString(payload)));
  const signature = signBytes(common.algorithms.signature!, forger.own!.privateKey, countersignStructure(aad, ciphertext));
  const keystream = signatureKeystream(common, binding.piv, binding.kid, forger.gid, false, signature.length);
  return createMessage({
    type: MessageType.NON,
    code: ResponseCode.Changed,
    token,
    options: [{ number: OptionNumber.Oscore, value: optionValue }],
    payload: concatBytes(ciphertext, signature.map((b, i) => b ^ keystream[i]!)),
  });
}

