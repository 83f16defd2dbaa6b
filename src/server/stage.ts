/**
 * The server's inbound path as an ordered list of stages (docs/architecture.md, "The processing
 * order is a contract"), in the style of Californium's layer stack: a request goes along the list
 * (`receive`), and an answer goes back through the stages before the one that answered
 * (`respond`, last to first), so a stage that wraps the response path (protection, block-wise
 * slicing, No-Response) sees every answer given after it and none given before it.
 *
 * The list itself is in stages/index.ts. Nothing here allocates per request beyond the
 * InboundRequest: stages are objects made once per server, called as methods, and a stage that
 * can do nothing under the server's configuration is not called at all (StagePlan).
 */
import type { BlockValue } from '../coap/block.js';
import type { CoapMessage } from '../coap/message.js';
import type { EndpointContext } from '../exchange/context.js';
import type { ServerExchange } from '../exchange/endpoint.js';
import type { Handler, ResourceDefinition } from './resource.js';
import type { ResponseProtector } from './security.js';

/** The request goes on to the next stage. */
export const PASS = 0;
/** The stage answered the request (InboundRequest.answer), or took it over and will answer it. */
export const DONE = 1;
export type StageVerdict = typeof PASS | typeof DONE;

export interface ServerStage {
  /** Names the stage in the order test and in docs/architecture.md. */
  readonly name: string;
  receive(request: InboundRequest): StageVerdict;
  /**
   * An answer given by a stage after this one, on its way out: the response as it goes on, or
   * undefined when nothing is to be sent (the CON still gets its empty ACK, RFC 7967 §2).
   */
  respond?(request: InboundRequest, response: CoapMessage): CoapMessage | undefined;
  /**
   * Whether `receive` can do anything for the server as it is configured now (its security, its
   * proxies, its group, its request logger): false when it would only return PASS. A stage that
   * cannot is not on a request's path at all (StagePlan). Absent: always.
   */
  receives?(): boolean;
  /** The same for `respond`: false when it would return every response unchanged. Absent: whenever `respond` exists. */
  responds?(): boolean;
}

/**
 * The stages a request actually visits, made from the list and the server's configuration when a
 * request arrives after the configuration changed (StagePipeline.reconfigured): a stage that can
 * do nothing under that configuration (OSCORE without security, a proxy claim without a proxy, the
 * request log without a logger, the group stages outside a group) costs a request nothing, not a
 * call each way. A request keeps the plan it arrived with until it is answered, so a change made
 * meanwhile (`CoapServer.security = …`) never gives it a response side its way in did not have.
 * Indexes are those of the full list: `InboundRequest.stage`, `run(request, from)` and `indexOf`
 * mean the same with or without the plan.
 */
export class StagePlan {
  /** Indexes of the stages whose `receive` runs, in order. */
  readonly receiving: readonly number[];
  /** Indexes of the stages whose `respond` runs, in list order (run last to first). */
  readonly responding: readonly number[];

  constructor(stages: readonly ServerStage[]) {
    const receiving: number[] = [];
    const responding: number[] = [];
    stages.forEach((stage, i) => {
      if (stage.receives?.() !== false) receiving.push(i);
      if (stage.respond !== undefined && stage.responds?.() !== false) responding.push(i);
    });
    this.receiving = receiving;
    this.responding = responding;
  }
}

export class StagePipeline {
  private plan: StagePlan | undefined;

  constructor(readonly stages: readonly ServerStage[]) {}

  /** The plan for a request arriving now (StagePlan), made again after the configuration changed. */
  currentPlan(): StagePlan {
    return (this.plan ??= new StagePlan(this.stages));
  }

  /** The server's configuration changed (security, proxies, request logger): later requests get a new plan. */
  reconfigured(): void {
    this.plan = undefined;
  }

  /** Runs the request through the stages from `from` (0: a request just received) until one takes it. */
  run(request: InboundRequest, from = 0): void {
    const stages = this.stages;
    const receiving = request.plan.receiving;
    let k = 0;
    while (k < receiving.length && receiving[k]! < from) k++;
    for (; k < receiving.length; k++) {
      const i = receiving[k]!;
      request.stage = i;
      if (stages[i]!.receive(request) === DONE) return;
    }
    // Every list ends with a stage that answers; one that does not is a bug, answered 5.00 by the caller.
    throw new Error('no server stage answered the request');
  }

  /** The answer of the stage the request is at, through the response side of the stages before it. */
  answer(request: InboundRequest, response: CoapMessage): void {
    const stages = this.stages;
    const responding = request.plan.responding;
    const at = request.stage;
    let outgoing: CoapMessage | undefined = response;
    for (let k = responding.length - 1; k >= 0; k--) {
      const i = responding[k]!;
      if (i >= at) continue;
      outgoing = stages[i]!.respond!(request, outgoing);
      if (outgoing === undefined) {
        request.exchange.acknowledge(); // a CON still needs its ACK; a NON gets nothing
        return;
      }
    }
    request.exchange.respond(outgoing);
  }

  indexOf(stage: ServerStage): number {
    const index = this.stages.indexOf(stage);
    if (index < 0) throw new Error(`stage ${stage.name} is not in this server's list`);
    return index;
  }
}

/**
 * One request on its way through the stages. `message` and `context` are the request as the
 * current stage sees it: the inner message and the authenticated context once OSCORE layers are
 * removed. The other fields are what a stage leaves for the stages after it (and for its own
 * response side); every field is set here so that all requests share one object shape.
 */
export class InboundRequest {
  /** Index of the stage processing the request (or that took it over). */
  stage = 0;
  /** Protection of responses and notifications with every OSCORE layer removed (§2.5); undefined without OSCORE. */
  protect: ResponseProtector | undefined = undefined;

  // outer block-wise (stages/outer-blockwise.ts)
  outerBlock1Control: Uint8Array | undefined = undefined;
  outerBlock2: BlockValue | undefined = undefined;
  outerKey = '';
  // the §2.4 loop (stages/oscore-layers.ts)
  removedLayers: ResponseProtector[] | undefined = undefined;
  // option checks (stages/option-checks.ts)
  block1: BlockValue | undefined = undefined;
  block2: BlockValue | undefined = undefined;
  // route (stages/route.ts)
  resource: ResourceDefinition | undefined = undefined;
  handler: Handler | undefined = undefined;
  path: readonly string[] = [];
  subPath: readonly string[] = [];
  // Block1 reassembly (stages/block1.ts)
  payload: Uint8Array | undefined = undefined;
  block1Control: Uint8Array | undefined = undefined;
  // CoAP group communication (stages/group-request.ts, stages/group-oscore.ts)
  /** The request came to an IP multicast group address. */
  viaGroup = false;
  /** Group OSCORE protection of the answers, and the mode the request used. */
  groupProtect: ResponseProtector | undefined = undefined;
  groupMode: 'group' | 'pairwise' | undefined = undefined;
  /** A Deterministic Request (cacheable-oscore §3.4.3): only resources marked `deterministic` serve it. */
  deterministic = false;
  /** Set by the handler stage on the resource's own response (not its 5.00): what Observe and Block2 act on. */
  representation = false;
  /** The handler answered without registering an observer (`CoapResponse.unobserved`, RFC 7641 §4.1). */
  unobserved = false;

  constructor(
    readonly pipeline: StagePipeline,
    public message: CoapMessage,
    readonly exchange: ServerExchange,
    public context: EndpointContext,
    /** The stages this request visits, fixed when it arrives (the server's fast path passes the plan it checked then). */
    readonly plan: StagePlan = pipeline.currentPlan(),
  ) {}

  /** Answers from the current stage (see StagePipeline.answer). */
  answer(response: CoapMessage): void {
    this.pipeline.answer(this, response);
  }
}
