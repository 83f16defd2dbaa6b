/** What application code sees on the server side: requests, responses, resources. */
import type { Code, MethodName } from '../coap/codes.js';
import type { CoapMessage, CoapOption } from '../coap/message.js';
import type { EndpointContext } from '../exchange/context.js';

export interface CoapRequest {
  readonly method: Code;
  /** "GET", "iPATCH", ... */
  readonly methodName: string;
  /** Decoded Uri-Path segments. */
  readonly path: readonly string[];
  /** Below a subtree resource: the segments after its prefix; otherwise empty. */
  readonly subPath: readonly string[];
  /** Decoded Uri-Query arguments. */
  readonly query: readonly string[];
  /** Validated options (unrecognized elective ones removed, §5.4.1). */
  readonly options: readonly CoapOption[];
  readonly payload: Buffer;
  readonly contentFormat: number | undefined;
  readonly accept: number | undefined;
  readonly confirmable: boolean;
  /** True when the server re-renders the resource for an Observe notification, not a new request. */
  readonly notification: boolean;
  readonly context: EndpointContext;
  readonly message: CoapMessage;
  option(number: number): Uint8Array | undefined;
  text(): string;
}

export interface CoapResponse {
  code: Code;
  payload?: string | Uint8Array;
  contentFormat?: number;
  /** Seconds; omitted means the default 60 (§5.10.5). */
  maxAge?: number;
  etag?: Uint8Array;
  options?: CoapOption[];
  /**
   * Answer a GET/FETCH with Observe 0 without registering the requester, so the response carries
   * no Observe option (RFC 7641 §4.1: a server unwilling to add an entry, e.g. a pub-sub topic at
   * its max-subscribers).
   */
  unobserved?: boolean;
}

export type Handler = (request: CoapRequest) => CoapResponse | Promise<CoapResponse>;

export type Handlers = Partial<Record<MethodName, Handler>>;

/** RFC 6690 attributes advertised in /.well-known/core. */
export interface LinkAttributes {
  title?: string;
  rt?: string | string[];
  if?: string | string[];
  ct?: number | number[];
  sz?: number;
  /** Observable (RFC 7641 §6). Set by resources that support Observe. */
  obs?: boolean;
}

export interface ResourceDefinition extends LinkAttributes {
  /** "/valve", "/a/b"; "/" is the root resource. */
  path: string;
  handlers: Handlers;
  /** Also answers every path below `path`; the handler reads request.subPath. */
  subtree?: boolean;
  /** Leave out of /.well-known/core. */
  hidden?: boolean;
  /**
   * Observable (RFC 7641): GET/FETCH with Observe 0 registers; call server.changed(path) when the
   * state changes. 'con' or 'non' chooses the notification message type (default 'con').
   */
  observable?: boolean | { notifications: 'con' | 'non' };
  /** Accept only OSCORE-protected requests; others get 4.01 (RFC 8613 §12.1 access control). */
  requireOscore?: boolean;
  /**
   * Demand fresh requests (RFC 9175 §2.3): a request of one of `methods` (default: the unsafe ones,
   * POST, PUT, DELETE, PATCH, iPATCH) without an Echo value this server issued to the same requester
   * at most `maxAgeMs` ago gets 4.01 with a new Echo value; the client repeats it with that value.
   * Mitigates the delay attack on actuation (seed 002 §2.1.1.2). See server/freshness.ts.
   */
  freshness?: { maxAgeMs: number; methods?: readonly MethodName[] };
  /**
   * Serve Deterministic Requests of a group (draft-ietf-core-cacheable-oscore §3.4.3): requests
   * any group member can make identically and a proxy can cache, with no source authentication
   * and no replay check — so only for a resource whose GET/FETCH has no side effects and whose
   * representation every group member may read. Others answer them with a protected 4.01.
   */
  deterministic?: boolean;
  /** For subtree resources: the links below it to advertise. */
  listLinks?: () => Array<{ path: string } & LinkAttributes>;
}
