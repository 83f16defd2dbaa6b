/**
 * Group OSCORE on the server (draft-ietf-core-oscore-groupcomm §7.2, §8.4; §7.3, §8.5 on the way
 * out): a request whose 'kid context' names one of this server's groups is verified in the group
 * mode (countersignature) or the pairwise mode, by the Recipient Context of its Sender ID (created
 * on the fly for a member the Group Manager vouched for, with its own replay window); every answer
 * given after this stage is protected for it, notifications with a fresh Partial IV.
 *
 * A request that fails and came to the group address is dropped silently (groupcomm-bis §3.1.2:
 * errors to group requests are suppressed); one sent to this server alone gets the error
 * unprotected (Max-Age 0), as for OSCORE (RFC 8613 §8.2). A member whose replay window is not
 * valid yet gets a protected 4.01 with Echo (§9), and its request is not delivered.
 *
 * A Deterministic Request (draft-ietf-core-cacheable-oscore §3.4.3: the kid of the group's
 * Deterministic Client and a Request-Hash) is verified with the key derived from its hash and no
 * replay window; the route stage lets only resources marked `deterministic` serve it, and the
 * answers are protected to be cacheable (§3.4.4, group-oscore/deterministic-exchange.ts).
 */
import { ResponseCode, codeClass } from '../../coap/codes.js';
import { encodeUint, getOption, type CoapMessage } from '../../coap/message.js';
import { OptionNumber } from '../../coap/options.js';
import { toHex } from '../../cose/cbor.js';
import { withOscoreLayer, type EndpointContext } from '../../exchange/context.js';
import { decodeGroupOscoreOption } from '../../group-oscore/option.js';
import { credentialSubject } from '../../group-oscore/credential.js';
import { acceptEchoedRequest, protectGroupResponse, unprotectGroupRequest } from '../../group-oscore/protect.js';
import type { GroupSecurityContext } from '../../group-oscore/context.js';
import { type DeterministicClient, unprotectDeterministicRequest } from '../../group-oscore/deterministic.js';
import { deterministicClientFor, protectDeterministicResponse } from '../../group-oscore/deterministic-exchange.js';
import type { RandomSource } from '../../util/random.js';
import type { RequestLog } from '../request-log.js';
import type { ResponseProtector } from '../security.js';
import { toMessage } from '../response.js';
import { DONE, PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';
import type { GroupServing } from './group-request.js';

/** RFC 9175 §2.2.1: an Echo value of 8 random bytes. */
const ECHO_LENGTH = 8;

/** What removing a Group OSCORE layer gave (GroupOscore.removeLayer). */
export type GroupLayerOutcome =
  | { ok: true; inner: CoapMessage; context: EndpointContext; protect: ResponseProtector; mode: 'group' | 'pairwise'; deterministic: boolean }
  /** `response`: what to send as is; undefined for a request to the group address (errors suppressed). */
  | { ok: false; response: CoapMessage | undefined };

export class GroupOscore implements ServerStage {
  readonly name = 'group-oscore';

  constructor(
    private readonly serving: GroupServing | undefined,
    private readonly random: RandomSource,
    private readonly log: RequestLog,
  ) {}

  /** Only a server with Group OSCORE contexts has a layer to remove (removeLayer is undefined without). */
  receives(): boolean {
    return this.serving?.contexts !== undefined;
  }

  /** groupProtect is set only by this stage's receive. */
  responds(): boolean {
    return this.serving?.contexts !== undefined;
  }

  receive(request: InboundRequest): StageVerdict {
    const outcome = this.removeLayer(request, request.message, request.context);
    if (outcome === undefined) return PASS;
    if (!outcome.ok) {
      if (outcome.response !== undefined) request.answer(outcome.response);
      return DONE;
    }
    request.groupMode = outcome.mode;
    request.groupProtect = outcome.protect;
    request.protect = outcome.protect;
    request.deterministic = outcome.deterministic;
    request.message = outcome.inner;
    request.context = outcome.context;
    return PASS;
  }

  /**
   * Removes the Group OSCORE layer of `message` (the request as it is now: the received one here,
   * or what the §2.4 loop of stages/oscore-layers.ts left after removing OSCORE layers around it —
   * a Deterministic Request behind an OSCORE-capable proxy's own layer). Undefined when it carries
   * no Group OSCORE of this server's groups. A refusal carries the answer to send as is (protected
   * where the group layer allows: an Echo challenge, a Deterministic Request with side effects),
   * or none when the request came to the group address (errors suppressed).
   */
  removeLayer(request: InboundRequest, message: CoapMessage, context: EndpointContext): GroupLayerOutcome | undefined {
    const contexts = this.serving?.contexts;
    if (contexts === undefined) return undefined;
    const option = getOption(message, OptionNumber.Oscore);
    if (option === undefined) return undefined;
    let decoded: ReturnType<typeof decodeGroupOscoreOption>;
    try {
      decoded = decodeGroupOscoreOption(option);
    } catch {
      return undefined; // not ours to judge: plain OSCORE (stages/oscore-layers.ts) answers malformed options
    }
    // Ours: the group mode (the Group Flag, §4.1) whatever its Gid — an unknown or retired one is
    // refused here (a removed member after the rekey) — and the pairwise mode of a group we know.
    if (decoded.kidContext === undefined || (!decoded.group && contexts.findByGid(decoded.kidContext) === undefined)) return undefined;
    const viaGroup = this.serving?.membership?.receivingGroupDatagram === true;
    const deterministic = deterministicClientFor(message, decoded, (gid) => contexts.findByGid(gid));
    if (deterministic !== undefined) return this.#deterministic(request, message, context, deterministic.context, deterministic.client, viaGroup);
    const result = unprotectGroupRequest(message, (gid) => contexts.findByGid(gid));
    if (!result.ok) {
      const refusal = toMessage({ code: result.code, payload: result.reason, options: [{ number: OptionNumber.MaxAge, value: encodeUint(0) }] });
      this.log.record(message, context, refusal, `Group OSCORE: ${result.reason}`);
      return { ok: false, response: viaGroup ? undefined : refusal };
    }
    const protect = (response: CoapMessage, kind: 'response' | 'notification'): CoapMessage =>
      protectGroupResponse(response, result.context, result.binding, { freshPartialIv: kind === 'notification' });
    if (result.freshness === 'unverified' && !acceptEchoedRequest(result)) {
      const echo = this.random.bytes(ECHO_LENGTH);
      result.recipient.echoChallenge = echo;
      const challenge = toMessage({ code: ResponseCode.Unauthorized, options: [{ number: OptionNumber.Echo, value: echo }] });
      return { ok: false, response: protect(challenge, 'response') };
    }
    if (result.freshness === 'fresh' && getOption(result.message, OptionNumber.Echo) !== undefined) acceptEchoedRequest(result);
    return {
      ok: true,
      inner: { ...result.message, type: message.type, messageId: message.messageId, token: message.token },
      context: withOscoreLayer(context, { peer: credentialSubject(result.recipient.credential.bytes) ?? toHex(result.binding.kid), kid: toHex(result.binding.kid), kidContext: toHex(result.binding.kidContext) }),
      protect,
      mode: result.mode,
      deterministic: false,
    };
  }

  /** cacheable-oscore §3.4.3: the Deterministic Client's request, with no replay window; the route stage checks the resource. */
  #deterministic(request: InboundRequest, received: CoapMessage, endpointContext: EndpointContext, context: GroupSecurityContext, client: DeterministicClient, viaGroup: boolean): GroupLayerOutcome {
    const result = unprotectDeterministicRequest(received, context, client);
    if (!result.ok) {
      const refusal = toMessage({ code: result.code, payload: result.reason, options: [{ number: OptionNumber.MaxAge, value: encodeUint(0) }] });
      this.log.record(received, endpointContext, refusal, `Deterministic Request: ${result.reason}`);
      if (viaGroup) return { ok: false, response: undefined };
      // A request with side effects gets a protected 4.01; a failed decryption, an unprotected 4.00.
      return { ok: false, response: result.binding !== undefined && result.requestHash !== undefined ? protectDeterministicResponse(toMessage({ code: result.code, payload: result.reason }), context, result.binding, result.requestHash) : refusal };
    }
    const { binding, requestHash } = result;
    // §3.4.4 steps 3 and 8: an Inner Observe without an Outer one asks no observation, but an
    // observable resource's success says, with an Inner Observe only, that it could be observed.
    const innerObserveOnly = binding.observe && getOption(received, OptionNumber.Observe) === undefined;
    const protect = (response: CoapMessage): CoapMessage =>
      protectDeterministicResponse(response, context, binding, requestHash, { innerObserveOnly: innerObserveOnly && request.resource?.observable !== undefined && request.resource.observable !== false && codeClass(response.code) === 2 });
    return {
      ok: true,
      inner: { ...result.message, type: received.type, messageId: received.messageId, token: received.token },
      context: withOscoreLayer(endpointContext, { peer: 'deterministic client', kid: toHex(binding.kid), kidContext: toHex(binding.kidContext) }),
      protect,
      mode: 'pairwise',
      deterministic: true,
    };
  }

  respond(request: InboundRequest, response: CoapMessage): CoapMessage {
    return request.groupProtect !== undefined ? request.groupProtect(response, 'response') : response;
  }
}
