/**
 * Routes through OSCORE-capable proxies (draft-ietf-core-oscore-capable-proxies §2.3, §2.6): a
 * request to an origin goes through a chain of hops (forward or reverse proxies), each optionally
 * sharing an OSCORE security context with this client, plus the end-to-end protection of the
 * origin (any MessageSecurity, normally OscoreClientSecurity).
 *
 * Outgoing (§2.3): the end-to-end layer first; then, from the hop nearest the origin back to the
 * hop nearest this client, the options that hop consumes (its proxy-related options naming where
 * it forwards to: Proxy-Scheme, Uri-Host, Uri-Port; a reverse proxy's own Uri-Path prefix) are
 * added and, when the hop has a context, its layer is applied. Options are classified per layer by
 * the §2.2 nine-step algorithm (oscore/escalation.ts), so every option a hop does not need is
 * encrypted — the proxy-related options of a hop land inside that hop's layer (Appendix B.1).
 * Hop-Limit is added before the layer of the first hop (§3: Class U end to end, protected for the
 * first proxy sharing a context).
 *
 * Addressing is onion-style: a hop learns only where to forward next. A hop without a context
 * cannot hide the addressing of the hop after it, so two consecutive forward proxies without
 * contexts share one set of proxy-related options: the earlier one must be configured to forward
 * via the later one (its next hop), as Proxy1 in Appendix B.6 does.
 *
 * A hop's context may also be made on demand (EDHOC, src/edhoc-coap/): its `security` then runs
 * the handshake in `around` and applies the layer with this route's classOf. `around` goes from
 * the origin inwards (end to end first, then hop k … hop 1): the handshake of hop i travels
 * through hops 1…i-1 as a request of its own, and may carry the message_3 of hop i-1 (RFC 9668
 * combined request; draft Appendix B.5), so an outer hop must not be holding that message_3 for
 * this request while an inner one is still being set up.
 *
 * Incoming (§2.6): the layers are removed in reverse order of their application (hop 1 first), and
 * the end-to-end security verifies what remains; with plain end-to-end security, a response still
 * carrying OSCORE after the expected layers is rejected.
 */
import { encodeUint, getOption, sortOptions, type CoapMessage, type CoapOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { parseCoapUri, uriToOptions, type CoapUri } from '../coap/uri.js';
import { CoapRequestError } from '../exchange/errors.js';
import { escalatingClassOf, pathConsumers, type NodeKind } from '../oscore/escalation.js';
import type { ClassOf } from '../oscore/protect.js';
import { requesterFor } from '../oscore/requester.js';
import type { OscoreSecurityContext } from '../oscore/security-context.js';
import { proxySchemeAddressing } from './addressing.js';
import { protectWith } from './oscore.js';
import { PLAIN, type MessageSecurity, type ProtectedRequest } from './security.js';
import type { SendRequest } from './blockwise.js';


export interface RouteHop {
  /** The proxy: "coap://10.0.0.3:5683" (forward), or a reverse proxy's URI with its path prefix ("coap://gw/dev1"). */
  uri: string;
  /** The OSCORE context this client shares with the proxy (one layer for it). */
  context?: OscoreSecurityContext;
  /** Instead of `context`: a layer whose context is made on demand (EdhocClientSecurity). */
  security?: HopSecurity;
  /** Default 'forward'. */
  kind?: 'forward' | 'reverse';
}

/** One hop's OSCORE layer when its context is set up with the proxy first (EDHOC). */
export interface HopSecurity {
  /**
   * Applies the layer to `message` with the route's `classOf`; `exchange` is the request this
   * route's `around` saw (what `around` prepared the layer for).
   */
  protectLayer(message: CoapMessage, classOf: ClassOf, exchange: CoapMessage): ProtectedRequest;
  /** As MessageSecurity.around: sets the context up before the exchange. */
  around?(exchange: SendRequest): SendRequest;
}

/** Whether a hop adds an OSCORE layer of its own. */
export const hasLayer = (hop: RouteHop): boolean => hop.context !== undefined || hop.security !== undefined;

export interface RouteOptions {
  /** §2.1: the most OSCORE layers applied to one request; beyond it the request is not sent. Default 4. */
  maxLayers?: number;
  /** RFC 8768 / draft §3: a Hop-Limit for the first proxy (Class U end to end, protected for that proxy). */
  hopLimit?: number;
}

export const DEFAULT_MAX_LAYERS = 4;

/** §2.1: an outgoing request would need more OSCORE layers than allowed; nothing was sent. */
export class TooManyLayersError extends CoapRequestError {}

/**
 * One OSCORE layer with a chosen classOf (§2.2), for a hop of a route or a proxy's upstream leg:
 * the client's one OSCORE path (oscore.ts protectWith, over src/oscore/requester.ts), so a layer
 * verifies responses and orders notifications exactly as end-to-end OSCORE does (RFC 8613 §7.4.1,
 * §8.4.2; draft §2.6.1 per layer). The context's requester is shared by every layer built on it.
 */
export class OscoreLayer implements MessageSecurity {
  constructor(
    readonly context: OscoreSecurityContext,
    private readonly classOf?: ClassOf,
  ) {}

  protect(request: CoapMessage): ProtectedRequest {
    return protectWith(requesterFor(this.context), request, this.classOf);
  }
}

interface PlannedHop {
  uri: CoapUri;
  hop: RouteHop;
}

/** The client side of a route: see the module comment. `endToEnd` is the origin's security (PLAIN for none). */
export class RouteSecurity implements MessageSecurity {
  private readonly hops: PlannedHop[];
  private readonly maxLayers: number;

  constructor(
    private readonly target: CoapUri,
    hops: readonly RouteHop[],
    private readonly endToEnd: MessageSecurity = PLAIN,
    private readonly options: RouteOptions = {},
  ) {
    this.hops = hops.map((hop) => ({ hop, uri: parseCoapUri(hop.uri) }));
    this.maxLayers = options.maxLayers ?? DEFAULT_MAX_LAYERS;
    const layers = hops.filter(hasLayer).length;
    if (layers > this.maxLayers) throw new TooManyLayersError(`the route needs ${layers} OSCORE layers for its proxies, more than the limit of ${this.maxLayers} (draft-ietf-core-oscore-capable-proxies §2.1)`);
  }

  /** The first leg: where the request is sent. */
  get firstHop(): CoapUri {
    return this.hops[0]?.uri ?? this.target;
  }

  protect(request: CoapMessage): ProtectedRequest {
    const e2e = this.endToEnd.protect(request);
    let message = e2e.message;
    let layers = getOption(message, OptionNumber.Oscore) !== undefined && getOption(request, OptionNumber.Oscore) === undefined ? 1 : 0;
    const k = this.hops.length;
    const kinds: NodeKind[] = [...this.hops.map((h): NodeKind => (h.hop.kind === 'reverse' ? 'reverse-proxy' : 'forward-proxy')), 'origin'];
    const defaults = pathConsumers(kinds);
    const applied: ProtectedRequest[] = [];
    for (let i = k; i >= 1; i--) {
      const { hop, uri } = this.hops[i - 1]!;
      const next = this.hops[i];
      const added: CoapOption[] = [];
      if (hop.kind === 'reverse') {
        // The reverse proxy's own resource: its path prefix (before the origin's own Uri-Path).
        const own = uriToOptions(uri, i === 1 ? uri.host : undefined, i === 1 ? uri.port : undefined);
        added.push(...own.filter((o) => o.number === OptionNumber.UriPath || (i === 1 && (o.number === OptionNumber.UriHost || o.number === OptionNumber.UriPort))));
      } else if (next === undefined || hasLayer(next.hop) || next.hop.kind === 'reverse') {
        added.push(...proxySchemeAddressing(next === undefined ? this.target : next.uri, uri.port, false));
      }
      if (i === 1 && this.options.hopLimit !== undefined) added.push({ number: OptionNumber.HopLimit, value: encodeUint(this.options.hopLimit) });
      for (const o of added) {
        if (o.number !== OptionNumber.UriPath && getOption(message, o.number) !== undefined) {
          throw new CoapRequestError(`route: option ${o.number} for ${hop.uri} collides with one already outside the inner layers; give the hop after it an OSCORE context, or let ${hop.uri} forward via a configured next hop`);
        }
      }
      message = { ...message, options: sortOptions([...added, ...message.options]) };
      if (!hasLayer(hop)) continue;
      if (++layers > this.maxLayers) throw new TooManyLayersError(`more than ${this.maxLayers} OSCORE layers (draft-ietf-core-oscore-capable-proxies §2.1); the request was not sent`);
      const addedNumbers = new Set(added.map((o) => o.number));
      const position = i;
      const classOf = escalatingClassOf({
        x: position,
        // What was added for this hop is consumed by it; the rest as the path's node kinds say.
        consumers: (n, m) => (n !== OptionNumber.HopLimit && addedNumbers.has(n) ? [position] : defaults(n, m)),
      });
      // A combined request's EDHOC option (RFC 9668 §3.1, Class U) is put outside the layer of the
      // node that consumes it (hop i's security, or the end-to-end one). For every layer before
      // that node, §2.2 gives Class E whoever the consumer is: step 4 → 6 → 8, X being the next
      // hop (position 1) or the next hop not being the option's consumer (Appendix B.5).
      const layer = hop.security !== undefined ? hop.security.protectLayer(message, classOf, request) : new OscoreLayer(hop.context!, classOf).protect(message);
      applied.unshift(layer);
      message = layer.message;
    }
    return {
      message,
      ordersNotifications: e2e.ordersNotifications || applied.length > 0,
      verify: (response, notification) => {
        // §2.6: the layers this client added, in reverse order of their application.
        let current = response;
        for (const layer of applied) {
          const verified = layer.verify(current, notification);
          if (verified instanceof Error) return verified;
          current = verified;
        }
        return e2e.verify(current, notification);
      },
      describe: (context) => e2e.describe(applied.reduce((ctx, layer) => layer.describe(ctx), context)),
    };
  }

  /**
   * draft-ietf-core-oscore-key-update §4.3.7 on every layer of the route: while a KUDOS update runs
   * on the end-to-end context or on a hop's context (a KudosClientPeer on its requester), the
   * request waits in that peer's gate like a direct one, and counts as in flight on each layer
   * until its exchange ends. Layers without an update admit at once.
   */
  async admit(): Promise<() => void> {
    const releases: (() => void)[] = [];
    const release = (): void => {
      for (const r of releases.splice(0)) r();
    };
    try {
      for (const { hop } of this.hops) if (hop.context !== undefined) releases.push(await requesterFor(hop.context).admit());
      if (this.endToEnd.admit !== undefined) releases.push(await this.endToEnd.admit());
    } catch (error) {
      release();
      throw error;
    }
    return release;
  }

  /** Sets up the layers made on demand, from the origin inwards (see the module comment). */
  around(exchange: SendRequest): SendRequest {
    let wrapped = exchange;
    for (const { hop } of this.hops) if (hop.security?.around !== undefined) wrapped = hop.security.around(wrapped);
    return this.endToEnd.around !== undefined ? this.endToEnd.around(wrapped) : wrapped;
  }
}
