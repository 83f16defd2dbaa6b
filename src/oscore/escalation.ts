/**
 * draft-ietf-core-oscore-capable-proxies §2.2 (state diagram: Appendix C): which options of a
 * message M are escalated to Class E when a sender applies the i-th OSCORE layer for the OSCORE
 * endpoint X. Only options originally specified *only* as outer options (Class U or I) go through
 * the nine steps; options that are (also) Class E keep the RFC 8613 processing (protect.ts).
 *
 * The sender's knowledge is expressed on the path it sends along: position 1 is its next hop,
 * position n the n-th node after it. For each option, `consumers` lists the positions of the nodes
 * meant to process it (nearest first). X is at position `x`. From that:
 *   X is a consumer (step 2)            ⇔ x ∈ consumers
 *   X is the immediately next consumer  ⇔ x = consumers[0]          (step 3)
 *   X is the next hop (step 4, first)   ⇔ x = 1
 *   the next hop is not the immediately next consumer (step 4, second) ⇔ consumers[0] ≠ 1
 *
 * A proxy protecting a message must recognise every option in it (§2.2: "the proxy has to be able
 * to recognize OPT"); an unrecognised one throws UnrecognizedOptionError, which the proxy turns into
 * 4.02 (request) or 5.02 (response).
 */
import type { CoapMessage } from '../coap/message.js';
import { OptionNumber, type OscoreClass, oscoreClassOf, optionDefinition } from '../coap/options.js';
import { defaultClassOf, type ClassOf } from './protect.js';

/** What the sender knows about one option OPT of M and the endpoint X (§2.2, steps 1–5). */
export interface OptionKnowledge {
  /** Step 1: the sender itself added OPT to M. */
  added: boolean;
  /** Step 2: X is a consumer of OPT. */
  xIsConsumer: boolean;
  /** Step 3: X is the immediately next consumer of OPT. */
  xIsNextConsumer: boolean;
  /** Step 4, first condition: X is the sender's next hop. */
  xIsNextHop: boolean;
  /** Step 4, second condition (negated): the next hop is the immediately next consumer of OPT. */
  nextHopIsNextConsumer: boolean;
  /** Step 5: X needs OPT before removing the layer, or in order to remove it. */
  xNeedsBeforeDecrypt: boolean;
}

export interface Escalation {
  cls: OscoreClass;
  /** The steps taken, in order (1…9), for tests and diagnostics. */
  steps: number[];
}

/** True for the options the nine steps apply to: originally specified only as Class U or I. */
export function isOuterOnly(optionNumber: number): boolean {
  const cls = oscoreClassOf(optionNumber);
  return optionDefinition(optionNumber) !== undefined && cls === 'U'; // no Class I option is defined (RFC 8613 §4.1.2)
}

const hasProxyScheme = (m: Pick<CoapMessage, 'options'>): boolean =>
  // Proxy-Scheme-Number (draft-ietf-core-href) has no assigned number here; Proxy-Scheme only.
  m.options.some((o) => o.number === OptionNumber.ProxyScheme);

/** The nine steps of §2.2 for one option. `optionNumber` must be outer-only (isOuterOnly). */
export function escalate(optionNumber: number, message: Pick<CoapMessage, 'options'>, k: OptionKnowledge): Escalation {
  const original = oscoreClassOf(optionNumber);
  const steps: number[] = [1];
  const finish = (cls: OscoreClass): Escalation => ({ cls, steps });
  const step6 = (): Escalation => {
    steps.push(6);
    if (optionNumber === OptionNumber.UriHost || optionNumber === OptionNumber.UriPort) {
      steps.push(7);
      if (!hasProxyScheme(message)) {
        steps.push(9);
        return finish(original);
      }
    }
    steps.push(8);
    return finish('E');
  };
  const step4 = (): Escalation => {
    steps.push(4);
    if (k.xIsNextHop || !k.nextHopIsNextConsumer) return step6();
    steps.push(9);
    return finish(original);
  };
  if (!k.added) return step4();
  steps.push(2);
  if (!k.xIsConsumer) return step4();
  steps.push(3);
  if (!k.xIsNextConsumer) {
    steps.push(9);
    return finish(original);
  }
  steps.push(5);
  if (k.xNeedsBeforeDecrypt) {
    steps.push(9);
    return finish(original);
  }
  return step6();
}

/** Thrown by a strict classOf when M carries an option the protecting proxy does not recognise. */
export class UnrecognizedOptionError extends Error {
  constructor(readonly optionNumber: number) {
    super(`option ${optionNumber} is not recognised: a protecting proxy cannot classify it (draft-ietf-core-oscore-capable-proxies §2.2)`);
  }
}

/** The sender's view of the path, for one layer (X at position `x`). */
export interface PathView {
  /** Position of X: 1 when X is the next hop. */
  x: number;
  /** Positions of the consumers of the option in M, nearest first ([] when none is known). */
  consumers(optionNumber: number, message: CoapMessage): readonly number[];
  /** Step 1. Default: every option was added by the sender (an origin client). */
  added?(optionNumber: number, message: CoapMessage): boolean;
  /** Step 5. Default: false. */
  needsBeforeDecrypt?(optionNumber: number, message: CoapMessage): boolean;
  /** Throw UnrecognizedOptionError for options without a definition (a protecting proxy). */
  strict?: boolean;
}

/** Knowledge of one option from a path view. */
export function knowledgeOf(view: PathView, optionNumber: number, message: CoapMessage): OptionKnowledge {
  const consumers = view.consumers(optionNumber, message);
  return {
    added: view.added ? view.added(optionNumber, message) : true,
    xIsConsumer: consumers.includes(view.x),
    xIsNextConsumer: consumers[0] === view.x,
    xIsNextHop: view.x === 1,
    nextHopIsNextConsumer: consumers[0] === 1,
    xNeedsBeforeDecrypt: view.needsBeforeDecrypt ? view.needsBeforeDecrypt(optionNumber, message) : false,
  };
}

/** A `classOf` for protectRequest/protectResponse that runs §2.2 for every outer-only option. */
export function escalatingClassOf(view: PathView): ClassOf {
  return (n, message) => {
    if (view.strict && optionDefinition(n) === undefined) throw new UnrecognizedOptionError(n);
    // The OSCORE option of an inner layer: never a consumer on this layer's path, so step 4 with the
    // next hop either being X or not consuming it — Class E (as defaultClassOf has it).
    if (n === OptionNumber.Oscore) return 'E';
    if (!isOuterOnly(n)) return defaultClassOf(n, message);
    return escalate(n, message, knowledgeOf(view, n, message)).cls;
  };
}

/** What a node on a request's path does with the proxy-related and Uri-* options. */
export type NodeKind = 'forward-proxy' | 'reverse-proxy' | 'origin';

/**
 * Default consumers on a path of known node kinds (position i+1 = kinds[i]):
 * Proxy-Uri, Proxy-Scheme and (with Proxy-Scheme) Uri-Host/Uri-Port — the forward proxies;
 * Uri-Host/Uri-Port without Proxy-Scheme — the first reverse proxy or the origin;
 * Hop-Limit — every proxy (RFC 8768; Class U by §3 of the draft); anything else — the origin.
 */
export function pathConsumers(kinds: readonly NodeKind[]): PathView['consumers'] {
  const positions = (pred: (k: NodeKind) => boolean): number[] => kinds.flatMap((k, i) => (pred(k) ? [i + 1] : []));
  return (n, message) => {
    switch (n) {
      case OptionNumber.ProxyUri:
      case OptionNumber.ProxyScheme:
        return positions((k) => k === 'forward-proxy');
      case OptionNumber.UriHost:
      case OptionNumber.UriPort:
        if (hasProxyScheme(message)) return positions((k) => k === 'forward-proxy');
        return positions((k) => k !== 'forward-proxy').slice(0, 1);
      case OptionNumber.HopLimit:
        return positions((k) => k !== 'origin');
      default:
        return positions((k) => k === 'origin');
    }
  };
}
