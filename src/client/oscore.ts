/**
 * OSCORE on the client (RFC 8613 §8.1, §8.4): every request gets a fresh Partial IV; its
 * responses are verified against it. For an observation, notifications must carry increasing
 * Partial IVs — the Notification Number of §7.4.1 — and at most one may reuse the request's nonce.
 * An unprotected answer (an OSCORE error from the server, or a forgery) is never accepted as the
 * resource's response; its code and diagnostic become the error message.
 */
import { codeToString } from '../coap/codes.js';
import { decodeString, getOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { protectRequest, unprotectResponse } from '../oscore/protect.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import type { MessageSecurity, ProtectedRequest } from './security.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export class OscoreClientSecurity implements MessageSecurity {
  constructor(private readonly context: OscoreSecurityContext) {}

  protect(request: CoapMessage): ProtectedRequest {
    const security = this.context;
    const { message, binding } = protectRequest(request, security.sender, security.nextSequenceNumber(), {
      ...(security.idContext ? { kidContext: 'include' as const } : {}),
    });
    let notificationNumber: number | undefined;
    let requestNonceUsed = false;
    return {
      message,
      verify(response, notification) {
        if (getOption(response, OptionNumber.Oscore) === undefined) {
          const diagnostic = response.payload.length > 0 ? `: ${decodeString(response.payload).slice(0, 100)}` : '';
          return new Error(`unprotected ${codeToString(response.code)}${diagnostic}`);
        }
        const result = unprotectResponse(response, security.primaryRecipient.params, binding);
        if (!result.ok) return new Error(`OSCORE verification failed: ${result.reason}`);
        if (notification && binding.observe) {
          // §7.4.1 and §8.4.2: Partial IVs only grow; the request nonce may serve one response only.
          if (result.sequenceNumber === undefined) {
            if (requestNonceUsed) return new Error('a second response without Partial IV');
            requestNonceUsed = true;
          } else {
            if (notificationNumber !== undefined && result.sequenceNumber <= notificationNumber) {
              return new Error(`notification replayed or reordered (Partial IV ${result.sequenceNumber})`);
            }
            notificationNumber = result.sequenceNumber;
          }
        }
        return result.message;
      },
      ordersNotifications: true,
      describe: (context) => ({
        ...context,
        oscore: [...(context.oscore ?? []), { peer: security.name, kid: hex(security.primaryRecipient.params.recipientId) }],
      }),
    };
  }
}
