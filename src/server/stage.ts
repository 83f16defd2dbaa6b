/**
 * The server's inbound path as an ordered list of stages (docs/architecture.md, "The processing
 * order is a contract"), in the style of Californium's layer stack: a request goes along the list
 * (`receive`), and an answer goes back through the stages before the one that answered
 * (`respond`, last to first), so a stage that wraps the response path (protection, block-wise
 * slicing, No-Response) sees every answer given after it and none given before it.
 *
 * The list itself is in stages/index.ts. Nothing here allocates per request beyond the
 * InboundRequest: stages are objects made once per server, called as methods.
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
}

export class StagePipeline {
  constructor(readonly stages: readonly ServerStage[]) {}

  /** Runs the request through the stages from `from` (0: a request just received) until one takes it. */
  run(request: InboundRequest, from = 0): void {
    const stages = this.stages;
    for (let i = from; i < stages.length; i++) {
      request.stage = i;
      if (stages[i]!.receive(request) === DONE) return;
    }
    // Every list ends with a stage that answers; one that does not is a bug, answered 5.00 by the caller.
    throw new Error('no server stage answered the request');
  }

  /** The answer of the stage the request is at, through the response side of the stages before it. */
  answer(request: InboundRequest, response: CoapMessage): void {
    const stages = this.stages;
    let outgoing: CoapMessage | undefined = response;
    for (let i = request.stage - 1; i >= 0; i--) {
      const stage = stages[i]!;
      if (stage.respond === undefined) continue;
      outgoing = stage.respond(request, outgoing);
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
  ) {}

  /** Answers from the current stage (see StagePipeline.answer). */
  answer(response: CoapMessage): void {
    this.pipeline.answer(this, response);
  }
}
