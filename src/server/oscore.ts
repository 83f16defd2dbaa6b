/**
 * OSCORE on the server (RFC 8613 §8.2, §8.3): unprotect a request with the context its kid names,
 * check the replay window, challenge with Echo after a restart (Appendix B.1.2), and protect every
 * response and notification to it. OSCORE errors go back unprotected with Max-Age 0 (§8.2);
 * everything the application answers, errors included, is protected (§8.3).
 */
import { ResponseCode } from '../coap/codes.js';
import { EMPTY_BYTES, MessageType, getOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { equalBytes } from '../oscore/context.js';
import { errorResponseParts, protectResponse, unprotectRequest } from '../oscore/protect.js';
import { ContextDirectory, OscoreSecurityContext } from '../oscore/security-context.js';
import type { EndpointContext } from '../exchange/context.js';
import type { ServerSecurity, UnprotectOutcome } from './security.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export class OscoreServerSecurity implements ServerSecurity {
  private readonly directory: ContextDirectory;

  constructor(contexts: readonly OscoreSecurityContext[]) {
    this.directory = new ContextDirectory(contexts);
  }

  unprotect(request: CoapMessage, context: EndpointContext): UnprotectOutcome | undefined {
    if (getOption(request, OptionNumber.Oscore) === undefined) return undefined;
    let found: ReturnType<ContextDirectory['find']>;
    const result = unprotectRequest(request, (kid, kidContext) => {
      found = this.directory.find(kid, kidContext);
      return found?.recipient.params;
    });
    if (!result.ok) return { ok: false, response: errorMessage(result) };
    const { context: security, recipient } = found!;

    if (!recipient.replay.initialised) {
      // Appendix B.1.2: after a restart, only a request echoing our challenge sets the window.
      const echo = getOption(result.message, OptionNumber.Echo);
      if (!echo || !recipient.echoChallenge || !equalBytes(echo, recipient.echoChallenge)) {
        recipient.echoChallenge = OscoreSecurityContext.newEchoValue();
        const challenge: CoapMessage = {
          type: MessageType.ACK,
          code: ResponseCode.Unauthorized,
          messageId: 0,
          token: EMPTY_BYTES,
          options: [{ number: OptionNumber.Echo, value: recipient.echoChallenge }],
          payload: EMPTY_BYTES,
        };
        // "MUST use its Partial IV ... and MUST include the Partial IV in the response".
        return { ok: false, response: protectResponse(challenge, security.sender, result.binding, { sequenceNumber: security.nextSequenceNumber() }) };
      }
      recipient.replay.initialiseAt(result.sequenceNumber);
      recipient.echoChallenge = undefined;
    } else if (!recipient.replay.accept(result.sequenceNumber)) {
      // §7.4: a Partial IV seen before (or too old for the window).
      return { ok: false, response: errorMessage({ code: ResponseCode.Unauthorized, reason: 'Replay detected' }) };
    }

    const layer = {
      peer: recipient.name,
      kid: hex(result.kid),
      ...(result.kidContext ? { kidContext: hex(result.kidContext) } : {}),
    };
    return {
      ok: true,
      inner: result.message,
      context: { ...context, oscore: [...(context.oscore ?? []), layer] },
      protect: (response, kind) =>
        protectResponse(
          response,
          security.sender,
          result.binding,
          // §8.3.1: every notification after the first carries a fresh Partial IV.
          kind === 'notification' ? { sequenceNumber: security.nextSequenceNumber() } : {},
        ),
    };
  }
}

function errorMessage(failure: { code: number; reason: string }): CoapMessage {
  return { type: MessageType.ACK, messageId: 0, token: EMPTY_BYTES, ...errorResponseParts(failure) };
}

