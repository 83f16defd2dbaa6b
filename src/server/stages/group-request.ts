/**
 * A request that came to an IP multicast group (draft-ietf-core-groupcomm-bis §3.1): its answer
 * waits a random Leisure (RFC 7252 §8.2; §3.6.1's defaults) and error answers are suppressed
 * (§3.1.2), so a group of servers neither floods the client nor answers for resources it lacks.
 *
 * The transport tells whether the datagram came to the group address only while it is being
 * delivered (MulticastServerTransport.receivingGroupDatagram), so `receive` reads it then. A CON
 * sent to a group never gets here: the transport drops it (RFC 7252 §8.1).
 */
import { getOption, hasOption, type CoapMessage } from '../../coap/message.js';
import { OptionNumber } from '../../coap/options.js';
import type { GroupContextStore } from '../../group-oscore/context.js';
import type { Scheduler } from '../../util/scheduler.js';
import { PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';

/** What a transport that joined a group tells the stages (src/transport/multicast.ts). */
export interface GroupMembership {
  readonly receivingGroupDatagram: boolean;
}

/** RFC 7252 §8.2 DEFAULT_LEISURE for unprotected groups. */
export const DEFAULT_LEISURE_MS = 5000;
/** §3.6.1: with Group OSCORE in the group mode, S = 200 bytes gives 20 s (13 s for the pairwise mode only). */
export const DEFAULT_GROUP_OSCORE_LEISURE_MS = 20_000;
export const DEFAULT_PAIRWISE_ONLY_LEISURE_MS = 13_000;

/** A server's group settings (ServerOptions.group). */
export interface GroupServing {
  /** The transport that joined the group; without it every request counts as unicast. */
  readonly membership?: GroupMembership;
  /** Group OSCORE contexts, found by the request's 'kid context' (stages/group-oscore.ts). */
  readonly contexts?: GroupContextStore;
  /** Upper bound of the random delay before answering a group request (ms). Default per §3.6.1. */
  readonly leisureMs?: number;
  /** Answers held back for their Leisure at once; past it, answers to further group requests are dropped. Default 1024. */
  readonly maxDelayedAnswers?: number;
}

export class GroupRequests implements ServerStage {
  readonly name = 'group-request';
  /** Answers waiting for their Leisure: bounded, since anyone can send group requests. */
  #delayed = 0;

  constructor(
    private readonly serving: GroupServing | undefined,
    private readonly scheduler: Scheduler,
    private readonly random: () => number,
  ) {}

  /** Without a joined group no request comes via a group address, and viaGroup stays false. */
  receives(): boolean {
    return this.serving?.membership !== undefined;
  }

  responds(): boolean {
    return this.serving?.membership !== undefined;
  }

  receive(request: InboundRequest): StageVerdict {
    if (this.serving?.membership?.receivingGroupDatagram === true) request.viaGroup = true;
    return PASS;
  }

  respond(request: InboundRequest, response: CoapMessage): CoapMessage | undefined {
    if (!request.viaGroup) return response;
    if (suppressedForGroup(request, response)) return undefined;
    const leisure = this.serving?.leisureMs ?? this.#defaultLeisure(request);
    if (leisure <= 0) return response;
    // A server that stays silent is within §3.1.2 (it MAY suppress): better than holding unbounded state.
    if (this.#delayed >= (this.serving?.maxDelayedAnswers ?? 1024)) return undefined;
    // Answer later, from this stage: the stages before it (Group OSCORE protection) run then.
    const index = request.pipeline.indexOf(this);
    this.#delayed += 1;
    this.scheduler.schedule(this.random() * leisure, () => {
      this.#delayed -= 1;
      request.stage = index;
      request.answer(response);
    });
    return undefined;
  }

  #defaultLeisure(request: InboundRequest): number {
    if (request.groupProtect === undefined) return DEFAULT_LEISURE_MS;
    const context = this.serving?.contexts;
    return context !== undefined && request.groupMode === 'pairwise' ? DEFAULT_PAIRWISE_ONLY_LEISURE_MS : DEFAULT_GROUP_OSCORE_LEISURE_MS;
  }
}

/**
 * §3.1.2: errors are suppressed, by class (so consistently per resource). Not suppressed: an Echo
 * challenge (the client needs it to go on, §6.3.1 and Group OSCORE §9), and — §6.5 — an error an
 * authenticated client asked for with No-Response (RFC 7967 already dropped the classes it named;
 * an unauthenticated client's No-Response can only widen suppression, never narrow it).
 */
export function suppressedForGroup(request: InboundRequest, response: CoapMessage): boolean {
  const cls = response.code >> 5;
  if (cls !== 4 && cls !== 5) return false;
  if (hasOption(response, OptionNumber.Echo)) return false;
  const authenticated = request.groupProtect !== undefined || request.protect !== undefined;
  return !(authenticated && getOption(request.message, OptionNumber.NoResponse) !== undefined);
}
