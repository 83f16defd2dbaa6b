/**
 * Observe through an intermediary (RFC 7641 §5), shared by the forward and the reverse proxy:
 * one upstream observation per upstream request serves every client (PR4.1), each client is an
 * observer of a virtual resource of this server with its own Observe sequence (PR4.2), and the
 * upstream observation is cancelled when the last client leaves.
 */
import { Method, ResponseCode, codeClass } from '../coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeUint, getOption, maxAgeOf, setOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { Observation } from '../client/observe.js';
import type { MessageSecurity } from '../client/security.js';
import type { CoapEndpoint } from '../exchange/endpoint.js';
import { TimeoutError } from '../exchange/errors.js';
import { operationKey } from '../server/blockwise.js';
import type { CoapServer, ProxiedRequest } from '../server/server.js';
import type { Observer } from '../server/observe.js';
import type { PeerAddress } from '../transport/transport.js';
import type { UpstreamLayer } from './oscore-proxy.js';

/** A proxy cannot verify end-to-end protection; it passes responses on as they are. */
const TRANSPARENT: MessageSecurity = {
  protect: (message) => ({ message, verify: (response) => response, describe: (context) => context, ordersNotifications: false }),
};

interface UpstreamObservation {
  observation: Observation;
  latest: CoapMessage | undefined;
  receivedAt: number;
  ended: boolean;
  ready: Promise<void>;
}

/** One upstream leg of an observation request, as the proxy built it. */
export interface ObserveLeg {
  /** The upstream request (Observe is set by the relay). */
  upstream: CoapMessage;
  endpoint: CoapEndpoint;
  peer: PeerAddress;
  /** The target URI, for diagnostics and to tell targets apart. */
  target: string;
  /** This proxy's own OSCORE layer towards the next hop (§2.3 of the OSCORE-capable-proxies draft). */
  layer?: UpstreamLayer;
}

export class ObserveRelay {
  private readonly upstreamObservations = new Map<string, UpstreamObservation>();

  /**
   * `label` keeps the virtual paths of two relays on one server apart; `plainly` answers a request
   * that carries Observe but starts no observation (a deregistration of nothing, Observe values
   * other than 0); `onStart` counts upstream observations; `finish` completes each notification for
   * its observer (the reverse proxy cuts block 0 in the observer's block size, RFC 7959 §2.6).
   */
  constructor(
    private readonly server: CoapServer,
    private readonly label: string,
    private readonly timeout: number,
    private readonly onStart: () => void = () => {},
    private readonly finish: (notification: CoapMessage, observer: Observer) => CoapMessage = (notification) => notification,
  ) {
    // One hook per registry: a second relay on the same server (a forward and a reverse proxy)
    // chains to the first instead of replacing it.
    const previous = server.observations.onPathEmpty;
    server.observations.onPathEmpty = (path) => (this.upstreamObservations.has(path) ? this.onNoObservers(path) : previous?.(path));
  }

  /**
   * A GET/FETCH carrying Observe `observe`. `plainly` handles what is no observation (the request
   * without Observe goes upstream once).
   */
  async relay(request: ProxiedRequest, leg: ObserveLeg, observe: number, plainly: () => void | Promise<void>): Promise<void> {
    const { upstream, peer } = leg;
    const path = `${this.label}:${operationKey(`${peer.address}|${peer.port}`, upstream, upstream.code === Method.FETCH)}|${leg.target}`;
    if (observe === 1 && getOption(upstream, OptionNumber.Oscore) !== undefined) {
      // An end-to-end protected deregistration is a new request (new Partial IV), so it does not
      // name the registration's path. Its observation was this client's alone (the path includes
      // the end-to-end OSCORE option): the deregistration itself goes upstream with the upstream
      // observation's token, so the origin deregisters too (RFC 7641 §3.6), and its answer comes back.
      const registered = request.observing();
      const up = registered === undefined ? undefined : this.upstreamObservations.get(registered);
      if (registered !== undefined && up && this.server.observations.count(registered) === 1) {
        this.upstreamObservations.delete(registered);
        this.server.removeVirtualObservable(registered);
        request.stopObserving(registered);
        try {
          const response = await up.observation.cancelWith(upstream);
          return request.respond(response instanceof Error ? errorMessage(ResponseCode.BadGateway, response.message) : forwardable(response));
        } catch (error) {
          return request.respond(errorMessage(error instanceof TimeoutError ? ResponseCode.GatewayTimeout : ResponseCode.BadGateway, `${leg.target}: ${(error as Error).message}`));
        }
      }
    }
    if (observe === 1) request.stopObserving(path);
    let up = this.upstreamObservations.get(path);
    if (!up) {
      if (observe !== 0) return plainly();
      up = this.startUpstream(path, leg);
    }
    await up.ready;
    if (!up.latest) return request.respond(errorMessage(ResponseCode.GatewayTimeout, `no answer from ${leg.target}`));
    const latest = this.render(up);
    if (observe === 0 && !up.ended && getOption(up.latest, OptionNumber.Observe) !== undefined) {
      setOption(latest, OptionNumber.Observe, encodeUint(request.observe(path)));
    }
    request.respond(latest);
  }

  private startUpstream(path: string, leg: ObserveLeg): UpstreamObservation {
    const { upstream, endpoint, peer, layer } = leg;
    // An OSCORE registration must not be re-sent by the proxy: the server would see a replay
    // (RFC 8613 §4.1.3.5.1); the client re-registers end to end instead.
    const protectedEndToEnd = getOption(upstream, OptionNumber.Oscore) !== undefined;
    const observation = new Observation(endpoint, peer, upstream, { maxBodySize: 1 << 20, maxRestarts: 0 }, {
      timeout: this.timeout,
      ...(protectedEndToEnd ? { reregisterDelay: () => 365 * 24 * 3600_000 } : {}),
    }, layer?.security ?? TRANSPARENT);
    let firstArrived: () => void = () => {};
    const up: UpstreamObservation = { observation, latest: undefined, receivedAt: 0, ended: false, ready: new Promise((resolve) => (firstArrived = resolve)) };
    this.upstreamObservations.set(path, up);
    this.onStart();
    this.server.addVirtualObservable(path, (observer) => this.finish(this.render(up), observer));
    void (async () => {
      try {
        for await (const notification of observation) {
          // With an upstream layer, the notification as it is once that layer is removed (§2.6).
          up.latest = layer ? notification.message : (notification.wire ?? notification.message);
          up.receivedAt = this.server.endpoint.scheduler.now();
          firstArrived();
          this.server.observations.changed(path);
        }
      } catch (error) {
        up.latest ??= errorMessage(error instanceof TimeoutError ? ResponseCode.GatewayTimeout : ResponseCode.BadGateway, (error as Error).message);
      }
      // The upstream observation ended: observers get its final response, which ends theirs.
      up.ended = true;
      firstArrived();
      if (up.latest && codeClass(up.latest.code) === 2) up.latest = errorMessage(ResponseCode.ServiceUnavailable, 'upstream observation ended');
      this.server.observations.changed(path);
      this.upstreamObservations.delete(path);
      this.server.removeVirtualObservable(path);
    })();
    return up;
  }

  /** The latest upstream representation, Max-Age reduced by its age here (RFC 7641 §5). */
  private render(up: UpstreamObservation): CoapMessage {
    const latest = up.latest!;
    const message: CoapMessage = { ...latest, type: MessageType.ACK, options: latest.options.filter((o) => o.number !== OptionNumber.Observe) };
    if (codeClass(latest.code) === 2 && getOption(latest, OptionNumber.Oscore) === undefined) {
      const age = Math.floor((this.server.endpoint.scheduler.now() - up.receivedAt) / 1000);
      setOption(message, OptionNumber.MaxAge, encodeUint(Math.max(0, maxAgeOf(latest) - age)));
    }
    return message;
  }

  /** PR4.1: the upstream observation ends when the last client leaves. */
  private onNoObservers(path: string): void {
    const up = this.upstreamObservations.get(path);
    if (!up) return;
    this.upstreamObservations.delete(path);
    this.server.removeVirtualObservable(path);
    void up.observation.cancel();
  }

  /** Upstream observations in progress. */
  get active(): number {
    return this.upstreamObservations.size;
  }

  async close(): Promise<void> {
    await Promise.all([...this.upstreamObservations.values()].map((up) => up.observation.cancel()));
    this.upstreamObservations.clear();
  }
}

/** PR1.3: the response as the origin sent it, on this leg. */
export function forwardable(response: CoapMessage): CoapMessage {
  return { type: MessageType.ACK, code: response.code, messageId: 0, token: EMPTY_BYTES, options: response.options.slice(), payload: response.payload };
}

/** The proxy's own error answer: Max-Age 0, so no cache downstream keeps it (RFC 7252 §5.6). */
export function errorMessage(code: number, diagnostic: string): CoapMessage {
  return { type: MessageType.ACK, code, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.MaxAge, value: encodeUint(0) }], payload: Buffer.from(diagnostic.slice(0, 200)) };
}
