/**
 * The server's fast path for a forwarded request (issue 21): a request a forward proxy on this
 * server takes (RFC 7252 §5.7: Proxy-Uri, or Proxy-Scheme with the Uri-* options) goes straight to
 * the proxy's `forward`, without the InboundRequest and the walk through the stages, when the
 * stages it would visit are provably no-ops for it. What the proxy does with it — its option
 * checks, target, destination policy, cache (§5.6), coalescing, the upstream exchange and its
 * 5.xx/4.xx answers — is the same code either way; only how the request reaches `forward` and how
 * its answer leaves differ, and both do what the stages would do.
 *
 * The answer goes out through the same exchange (the messaging layer: the piggybacked ACK, or the
 * empty ACK after the server's delay and a separate response, §5.2.2; deduplication, §4.5), so a
 * slow upstream is answered exactly as on the layered path. Everything else — a server with
 * OSCORE, a group, outer block-wise or a reverse proxy on its plan, and a request with Observe,
 * Block1/Block2, No-Response, OSCORE, EDHOC or another option outside the set below — takes the
 * layered path.
 */
import type { CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { EndpointContext } from '../exchange/context.js';
import type { ServerExchange } from '../exchange/endpoint.js';
import type { PeerAddress } from '../transport/transport.js';
import type { RequestLog } from './request-log.js';
import { isPromise } from './response.js';
import { InboundRequest, type StagePipeline, type StagePlan } from './stage.js';
import { ForwardedRequest, ProxyClaim, proxyFailure, type ProxiedRequest, type ProxyHandlers } from './stages/proxy-claim.js';

/**
 * On a plan that may take the proxy fast path, the stages before the proxy claim (all the request
 * would visit: the claim answers it, DONE) and what each is for this request:
 * - edhoc-combined (receive): PASS for every request a proxy claims (its own first check after
 *   the EDHOC option's absence), and the option is not in the set anyway.
 * - no-response (respond): no No-Response option in the request (not in the set), nothing suppressed.
 * - request-log (respond): the answer recorded with the same request and context (ProxyFastPath.answer).
 * Any other stage before the claim on the plan (OSCORE, the group stages, the KUDOS gate, outer
 * block-wise) must see the request, and every request takes the layered path.
 */
const RECEIVING_BEFORE_CLAIM = new Set(['edhoc-combined']);
const RESPONDING_BEFORE_CLAIM = new Set(['no-response', 'request-log']);

/**
 * The options of a request the fast path forwards, by number: the proxy-related ones and those of
 * a plain request (addressing, Content-Format, Accept, Hop-Limit, the conditional ones and ETag,
 * which the cache reads). Their lengths and repetitions are checked by the proxy itself
 * (checkProxyRequest), on either path. Observe (the relay), Block1/Block2, No-Response, OSCORE,
 * EDHOC, Echo, Request-Tag, Size1/Size2 and unrecognized options go the layered way.
 */
const FORWARDED_OPTIONS = new Uint8Array(OptionNumber.ProxyScheme + 1);
for (const n of [
  OptionNumber.IfMatch,
  OptionNumber.UriHost,
  OptionNumber.ETag,
  OptionNumber.IfNoneMatch,
  OptionNumber.UriPort,
  OptionNumber.UriPath,
  OptionNumber.ContentFormat,
  OptionNumber.UriQuery,
  OptionNumber.HopLimit,
  OptionNumber.Accept,
  OptionNumber.ProxyUri,
  OptionNumber.ProxyScheme,
]) FORWARDED_OPTIONS[n] = 1;

/** Whether every option is of the forwarded set and one of them is Proxy-Uri or Proxy-Scheme (what ProxyHandlers.claimant looks for). */
function forwardedOptions(message: CoapMessage): boolean {
  const options = message.options;
  let proxied = false;
  for (let i = 0; i < options.length; i++) {
    const number = options[i]!.number;
    if (number >= FORWARDED_OPTIONS.length || FORWARDED_OPTIONS[number] === 0) return false;
    if (number === OptionNumber.ProxyUri || number === OptionNumber.ProxyScheme) proxied = true;
  }
  return proxied;
}

export interface ProxyFastPathParts {
  readonly pipeline: StagePipeline;
  readonly proxies: ProxyHandlers;
  readonly log: RequestLog;
}

export class ProxyFastPath {
  /** Requests handed to the forward proxy by this path (for tests and tools that check it is taken). */
  forwarded = 0;
  private checkedPlan: StagePlan | undefined;
  private planTakes = false;
  /** The proxy claim stage and where it is in the list (where a request handed back by `local` resumes from). */
  readonly claim: ProxyClaim | undefined;
  readonly claimIndex: number;

  /** `enabled`: as for FastPath (ServerOptions.fastPath, no stage list of its own, not a stream carrier). */
  constructor(
    private readonly parts: ProxyFastPathParts,
    readonly enabled: boolean,
  ) {
    const stages = parts.pipeline.stages;
    this.claimIndex = stages.findIndex((stage) => stage instanceof ProxyClaim);
    this.claim = this.claimIndex >= 0 ? (stages[this.claimIndex] as ProxyClaim) : undefined;
  }

  /**
   * Hands `message` to the forward proxy if it is a simple forwarded request and returns true;
   * false leaves it, untouched, to the stages. What ProxyClaim.receive does for it, without the
   * InboundRequest: a forward that throws or rejects is answered 5.00 (proxyFailure).
   */
  take(message: CoapMessage, exchange: ServerExchange): boolean {
    const handler = this.parts.proxies.forwarding;
    if (!this.enabled || handler === undefined || !this.claimPlan()) return false;
    // RFC 7252 §5.8: the methods a server knows (1–7); the proxy checks the rest on either path.
    const code = message.code;
    if (code < 1 || code > 7 || !forwardedOptions(message)) return false;
    const proxied = new FastForwardedRequest(this, message, exchange, this.checkedPlan!);
    this.forwarded++;
    try {
      const result = handler.forward(proxied);
      if (isPromise(result)) result.catch((error: unknown) => proxied.fail(error));
    } catch (error) {
      proxied.fail(error);
    }
    return true;
  }

  get pipeline(): StagePipeline {
    return this.parts.pipeline;
  }

  /** The answer on its way out: what the request-log and No-Response stages do with it here (see RESPONDING_BEFORE_CLAIM). */
  answer(message: CoapMessage, exchange: ServerExchange, response: CoapMessage): void {
    this.parts.log.record(message, exchange.context, response);
    exchange.respond(response);
  }

  /** Whether the plan a request arriving now gets has, before the proxy claim, only stages that are no-ops for a forwarded request. */
  private claimPlan(): boolean {
    const plan = this.parts.pipeline.currentPlan();
    if (plan !== this.checkedPlan) {
      const stages = this.parts.pipeline.stages;
      const at = this.claimIndex;
      this.checkedPlan = plan;
      this.planTakes =
        at >= 0 &&
        plan.receiving.includes(at) &&
        plan.receiving.every((i) => i >= at || RECEIVING_BEFORE_CLAIM.has(stages[i]!.name)) &&
        plan.responding.every((i) => i >= at || RESPONDING_BEFORE_CLAIM.has(stages[i]!.name));
    }
    return this.planTakes;
  }
}

/**
 * The ProxiedRequest of a request the fast path forwards. `respond` and `local` do what the
 * layered path's ForwardedRequest does (answer once, through the stages before the claim, or hand
 * the request back at §2.4 step 1); the rest (Observe registration, further responses) is
 * the layered ForwardedRequest's own, on an InboundRequest made as the stages would have left it
 * at the claim (only made if one of them is called).
 */
class FastForwardedRequest implements ProxiedRequest {
  readonly context: EndpointContext;
  /** Answered, or handed back to the pipeline by `local`: whatever comes later is ignored. */
  answered = false;
  private inbound: InboundRequest | undefined = undefined;
  private layered: ForwardedRequest | undefined = undefined;

  constructor(
    private readonly path: ProxyFastPath,
    readonly message: CoapMessage,
    private readonly exchange: ServerExchange,
    private readonly plan: StagePlan,
  ) {
    this.context = exchange.context;
  }

  respond(response: CoapMessage): void {
    if (this.answered) return;
    this.answered = true;
    this.path.answer(this.message, this.exchange, response);
  }

  local(consumed: CoapMessage): void {
    if (this.answered) return;
    this.answered = true;
    this.path.claim!.resume(this.atClaim(), consumed);
  }

  observe(path: string): number {
    return this.forwardedRequest().observe(path);
  }

  stopObserving(path: string): void {
    this.forwardedRequest().stopObserving(path);
  }

  observing(): string | undefined {
    return this.forwardedRequest().observing();
  }

  get peer(): PeerAddress {
    return this.exchange.context.peer;
  }

  protectAgain(response: CoapMessage): CoapMessage {
    return this.forwardedRequest().protectAgain(response);
  }

  fail(error: unknown): void {
    this.respond(proxyFailure(error));
  }

  /** The request as the stages would have left it at the proxy claim. */
  private atClaim(): InboundRequest {
    if (this.inbound === undefined) {
      this.inbound = new InboundRequest(this.path.pipeline, this.message, this.exchange, this.context, this.plan);
      this.inbound.stage = this.path.claimIndex;
    }
    return this.inbound;
  }

  private forwardedRequest(): ForwardedRequest {
    return (this.layered ??= new ForwardedRequest(this.path.claim!, this.atClaim()));
  }
}
