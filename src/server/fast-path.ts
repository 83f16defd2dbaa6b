/**
 * The server's fast path (issue 21): a simple request — an unprotected CON or NON request whose
 * options all come from a small set, with a resource and a method handler that answer it at once
 * with a response that fits one block — is answered here, without the InboundRequest and the walk
 * through the stages (stage.ts), by the same code the stages would run for it. Everything else
 * (and a simple request whose handler is async or whose response needs Block2) takes the layered
 * path, the handler still running once.
 *
 * An OSCORE request whose inner request is simple takes it too, once the OSCORE stage has removed
 * its layers (FastPath.takeInner): the stages between that one and the handler are skipped, and
 * the handler's answer goes back up through every stage before them — the request log, the
 * protection of RFC 8613 §8.3 with the layers removed (§2.5 of the OSCORE-capable-proxies draft),
 * the outer block-wise — exactly as the layered path sends it.
 *
 * The messaging layer below is the same for both paths: deduplication (RFC 7252 §4.5, a duplicate
 * CON gets the recorded reply, a duplicate NON nothing), the piggybacked ACK or the separate
 * response after the empty ACK (§5.2), RST for what cannot be processed (§4.2), all happen before
 * and after the server, whichever path answers.
 */
import { blockSize } from '../coap/block.js';
import { getStringOptions, type CoapMessage } from '../coap/message.js';
import { OptionNumber, hasValidLength } from '../coap/options.js';
import type { ServerExchange } from '../exchange/endpoint.js';
import type { BlockwiseServer } from './blockwise.js';
import type { RequestLog } from './request-log.js';
import type { CoapResponse, Handler, ResourceDefinition } from './resource.js';
import { buildRequest, handlerFor } from './resource-request.js';
import { internalError, isPromise, toMessage, toResponse } from './response.js';
import type { Router } from './router.js';
import { InboundRequest, type StagePipeline, type StagePlan } from './stage.js';
import { answerWhenSettled, finishHandler } from './stages/handler.js';
import { OscoreLayers } from './stages/oscore-layers.js';

/**
 * The stages of the standard list (stages/index.ts) a plain server's plan may hold and still take
 * the fast path: for a simple request each is provably a no-op (see FastPath.take). A plan with any
 * other stage — OSCORE, EDHOC's KUDOS gate, outer block-wise, a proxy claim, the group stages —
 * has something that must see every request, and every request takes the layered path.
 */
const PLAIN_RECEIVING = new Set(['edhoc-combined', 'option-checks', 'route', 'block2', 'block1', 'handler']);
const PLAIN_RESPONDING = new Set(['no-response', 'request-log', 'block2', 'observe', 'block1']);

/**
 * For an OSCORE request's inner request (takeInner): the stages after `oscore-layers` whose receive
 * may be on its plan, and those whose respond side the fast answer leaves out (it answers from the
 * first of them, so the respond sides before it — request log, No-Response, the OSCORE protection
 * and whatever precedes it — all run). A proxy claim (which must see the inner request, §2.4
 * steps 1–4 of the OSCORE-capable-proxies draft) or any other stage there keeps every request layered.
 */
const INNER_RECEIVING = new Set(['option-checks', 'route', 'block2', 'block1', 'handler']);
const INNER_SKIPPED_RESPONDING = new Set(['block2', 'observe', 'block1']);

/**
 * The options of a simple request, by number: 1 may occur once, 2 may repeat (RFC 7252 §5.4.5,
 * as options.ts defines them). Uri-Host and Uri-Port are read by nothing but a proxy claim, which a
 * plain plan does not have; Uri-Path, Uri-Query, Content-Format and Accept are the route's and the
 * handler's. Anything else (OSCORE, Observe, Block1/2, Size1/2, Proxy-*, No-Response, Echo,
 * Request-Tag, EDHOC, ETag, If-*, unrecognized ones) sends the request the layered way.
 */
const SIMPLE_OPTIONS = new Uint8Array(OptionNumber.Accept + 1);
SIMPLE_OPTIONS[OptionNumber.UriHost] = 1;
SIMPLE_OPTIONS[OptionNumber.UriPort] = 1;
SIMPLE_OPTIONS[OptionNumber.ContentFormat] = 1;
SIMPLE_OPTIONS[OptionNumber.Accept] = 1;
SIMPLE_OPTIONS[OptionNumber.UriPath] = 2;
SIMPLE_OPTIONS[OptionNumber.UriQuery] = 2;

/** Whether every option is of the simple set, with a valid length (§5.4.3) and not repeated where it must not be (§5.4.5). */
function simpleOptions(message: CoapMessage): boolean {
  const options = message.options;
  let previous = -1;
  for (let i = 0; i < options.length; i++) {
    const o = options[i]!;
    const number = o.number;
    const kind = number < SIMPLE_OPTIONS.length ? SIMPLE_OPTIONS[number]! : 0;
    if (kind === 0 || (kind === 1 && number === previous) || !hasValidLength(number, o.value.length)) return false;
    previous = number;
  }
  return true;
}

export interface FastPathParts {
  readonly pipeline: StagePipeline;
  readonly router: Router;
  readonly blockwise: BlockwiseServer;
  readonly log: RequestLog;
}

export class FastPath {
  /** Requests answered by the fast path itself (not handed to the layered response side). */
  answered = 0;
  private checkedPlan: StagePlan | undefined;
  private planIsPlain = false;
  private readonly handlerIndex: number;
  /** takeInner's plan check, cached as plainPlan's is (a request keeps the plan it arrived with). */
  private checkedInnerPlan: StagePlan | undefined;
  private innerPlanIsPlain = false;
  /** Where takeInner answers from: the first stage whose respond side it leaves out (block2). */
  private readonly innerAnswerIndex: number;
  private readonly oscoreIndex: number;

  /**
   * `enabled`: false for `ServerOptions.fastPath: false`, a server with its own stage list (a
   * plug-in stage may need to see every request) and a stream carrier (RFC 8323: BERT and no
   * message types, which the layered path handles).
   */
  constructor(
    private readonly parts: FastPathParts,
    readonly enabled: boolean,
  ) {
    const stages = parts.pipeline.stages;
    this.handlerIndex = stages.findIndex((stage) => stage.name === 'handler');
    this.oscoreIndex = stages.findIndex((stage) => stage.name === 'oscore-layers');
    this.innerAnswerIndex = stages.findIndex((stage, i) => i > this.oscoreIndex && INNER_SKIPPED_RESPONDING.has(stage.name));
    const layers = stages[this.oscoreIndex];
    if (enabled && layers instanceof OscoreLayers && this.handlerIndex > this.oscoreIndex && this.innerAnswerIndex > this.oscoreIndex) layers.innerFastPath = this;
  }

  /**
   * Answers `message` if it is simple and returns true; false leaves it, untouched, to the stages.
   * Once the handler has run, the request is this method's: an async handler's answer, or a
   * response that needs Block2, goes through the layered response side from the handler stage.
   */
  take(message: CoapMessage, exchange: ServerExchange): boolean {
    if (!this.enabled || !this.plainPlan()) return false;
    // RFC 7252 §5.8: only the methods the option checks know (1–7); others get their 4.05 there.
    const code = message.code;
    if (code < 1 || code > 7 || !simpleOptions(message)) return false;
    // Why skipping each stage of the plain plan is a no-op for this request (stages/index.ts):
    // - edhoc-combined: no EDHOC option (not in the simple set), so it returns PASS.
    // - option-checks: every option is recognized (all are in SERVER_OPTIONS), of valid length and
    //   not repeated where it must not be (simpleOptions), so checkOptions keeps the option list as
    //   it is; no Proxy-Uri/Proxy-Scheme (no 5.05, no proxyNames); a known method (no 4.05); no
    //   Block1/Block2, so request.block1/block2 stay undefined.
    // - route: the same match as below; what it would answer (4.04, 4.01 for requireOscore or
    //   freshness, 4.05 without a handler) is left to it: such requests go the layered way.
    //   `deterministic` is only ever set by the OSCORE stages, absent from a plain plan.
    // - block2 (receive): request.block2 is undefined, so PASS. block1 (receive): no Block1, PASS.
    // On the way out, for the handler's answer (respond sides, last to first):
    // - block1: no Block1 control to echo. observe: no Observe option in the request.
    // - block2: no Block2 in the request and UDP/DTLS (no BERT), so a response whose payload fits
    //   the preferred block goes out as it is; a larger one takes the layered response side.
    // - request-log: recorded here, with the same request, context and response.
    // - no-response: no No-Response option, nothing suppressed.
    const path = getStringOptions(message, OptionNumber.UriPath);
    const match = this.parts.router.match(path);
    if (match === undefined) return false;
    const resource = match.resource;
    if (resource.requireOscore || resource.freshness !== undefined) return false;
    const handler = handlerFor(resource.handlers, code);
    if (handler === undefined) return false;
    const context = exchange.context;
    let result: CoapResponse | Promise<CoapResponse>;
    try {
      result = handler(buildRequest(message, message.payload, path, match.subPath, context));
    } catch (error) {
      // The handler stage's answer to a throwing handler: a 5.00, never sliced (no representation).
      this.send(message, exchange, toMessage(internalError(error)));
      return true;
    }
    if (isPromise(result)) {
      answerWhenSettled(this.layered(message, exchange, resource, handler, path, match.subPath), result);
      return true;
    }
    const response = toResponse(message, result);
    if (response.payload.length > blockSize(this.parts.blockwise.limits.preferredSzx)) {
      finishHandler(this.layered(message, exchange, resource, handler, path, match.subPath), result);
      return true;
    }
    this.send(message, exchange, response);
    return true;
  }

  /**
   * Answers the inner request of `request` — the OSCORE stage has just removed its layers
   * (`request.message` and `request.context` are the inner request and its authenticated context,
   * `request.protect` the protection of its answers) — if it is simple, and returns true; false
   * leaves it, untouched, to the stages after the OSCORE stage.
   */
  takeInner(request: InboundRequest): boolean {
    if (!this.innerPlan(request.plan) || request.deterministic) return false;
    const message = request.message;
    const code = message.code;
    if (code < 1 || code > 7 || !simpleOptions(message)) return false;
    // What each skipped stage would do is said at `take`; here, in addition:
    // - proxy-claim is not on the plan (innerPlan), so no proxy could have claimed the inner request.
    // - route: requireOscore is met when a layer was removed (the context names it, as route.ts
    //   checks); a Deterministic Request (`deterministic`, from a nested Group OSCORE layer) goes
    //   the layered way for its 4.01.
    const path = getStringOptions(message, OptionNumber.UriPath);
    const match = this.parts.router.match(path);
    if (match === undefined) return false;
    const resource = match.resource;
    const context = request.context;
    if ((resource.requireOscore && !context.oscore?.length) || resource.freshness !== undefined) return false;
    const handler = handlerFor(resource.handlers, code);
    if (handler === undefined) return false;
    // From here on the request is at the handler stage, as the route stage would have left it:
    // a throwing or async handler, or a response to slice, is answered by the layered code.
    request.stage = this.handlerIndex;
    request.resource = resource;
    request.handler = handler;
    request.path = path;
    request.subPath = match.subPath;
    let result: CoapResponse | Promise<CoapResponse>;
    try {
      result = handler(buildRequest(message, message.payload, path, match.subPath, context));
    } catch (error) {
      request.answer(toMessage(internalError(error)));
      return true;
    }
    if (isPromise(result)) {
      answerWhenSettled(request, result);
      return true;
    }
    const response = toResponse(message, result);
    if (response.payload.length > blockSize(this.parts.blockwise.limits.preferredSzx)) {
      finishHandler(request, result);
      return true;
    }
    request.representation = true;
    request.unobserved = result.unobserved === true;
    // Block1, Observe and Block2 leave this response as it is (see `take`): answer from before them.
    request.stage = this.innerAnswerIndex;
    request.answer(response);
    this.answered++;
    return true;
  }

  private send(message: CoapMessage, exchange: ServerExchange, response: CoapMessage): void {
    this.parts.log.record(message, exchange.context, response);
    exchange.respond(response);
    this.answered++;
  }

  /** The request as the stages would have left it at the handler stage, for the layered response side. */
  private layered(message: CoapMessage, exchange: ServerExchange, resource: ResourceDefinition, handler: Handler, path: readonly string[], subPath: readonly string[]): InboundRequest {
    // The plan checked on arrival: a handler that changed the configuration (`server.security = …`)
    // gives this request no response side its way in did not have (stage.ts, StagePlan).
    const request = new InboundRequest(this.parts.pipeline, message, exchange, exchange.context, this.checkedPlan);
    request.stage = this.handlerIndex;
    request.resource = resource;
    request.handler = handler;
    request.path = path;
    request.subPath = subPath;
    return request;
  }

  /** Whether, after the OSCORE stage, `plan` has only stages that are no-ops for a simple inner request. */
  private innerPlan(plan: StagePlan): boolean {
    if (plan !== this.checkedInnerPlan) {
      const stages = this.parts.pipeline.stages;
      const after = (indexes: readonly number[], from: number): string[] => indexes.filter((i) => i > from).map((i) => stages[i]!.name);
      this.checkedInnerPlan = plan;
      this.innerPlanIsPlain =
        after(plan.receiving, this.oscoreIndex).every((name) => INNER_RECEIVING.has(name)) && after(plan.responding, this.innerAnswerIndex - 1).every((name) => INNER_SKIPPED_RESPONDING.has(name));
    }
    return this.innerPlanIsPlain;
  }

  /** Whether the plan a request arriving now gets has only stages that are no-ops for a simple request. */
  private plainPlan(): boolean {
    const plan = this.parts.pipeline.currentPlan();
    if (plan !== this.checkedPlan) {
      const stages = this.parts.pipeline.stages;
      this.checkedPlan = plan;
      this.planIsPlain = this.handlerIndex >= 0 && plan.receiving.every((i) => PLAIN_RECEIVING.has(stages[i]!.name)) && plan.responding.every((i) => PLAIN_RESPONDING.has(stages[i]!.name));
    }
    return this.planIsPlain;
  }
}
