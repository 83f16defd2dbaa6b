/**
 * The server's inbound path, in order. A request goes down this list (after the carrier's
 * deduplication, src/messaging/, which runs before any stage: a retransmission gets the cached
 * answer and never reaches OSCORE's replay check); an answer goes back up through the stages
 * before the one that gave it (src/server/stage.ts). To add a stage (EDHOC, Group OSCORE), write
 * it in its own module in this folder and add one element here, at its place.
 */
import type { BlockwiseServer } from '../blockwise.js';
import type { EchoFreshness } from '../freshness.js';
import type { ObserveRegistry } from '../observe.js';
import type { RequestLog } from '../request-log.js';
import type { Router } from '../router.js';
import type { ServerStage } from '../stage.js';
import type { RandomSource } from '../../util/random.js';
import type { Scheduler } from '../../util/scheduler.js';
import { Block1Reassembly } from './block1.js';
import { Block2 } from './block2.js';
import { EdhocCombined } from './edhoc-combined.js';
import { GroupOscore } from './group-oscore.js';
import { GroupRequests, type GroupServing } from './group-request.js';
import { HandlerStage } from './handler.js';
import { KudosGate } from './kudos-gate.js';
import { NoResponse } from './no-response.js';
import { ObserveStage } from './observe.js';
import { OptionChecks } from './option-checks.js';
import { OscoreLayers, type OscoreLayerSettings } from './oscore-layers.js';
import { OuterBlockwise } from './outer-blockwise.js';
import { ProxyClaim, type ProxyHandlers, type VirtualObservables } from './proxy-claim.js';
import { RequestLogging } from './request-log.js';
import { Route } from './route.js';

/** What the stages of one server share: its state, made once per server. */
export interface ServerParts {
  /** Read on every request: `security` can be replaced after the server starts. */
  readonly settings: OscoreLayerSettings;
  readonly log: RequestLog;
  readonly proxies: ProxyHandlers;
  readonly router: Router;
  readonly blockwise: BlockwiseServer;
  readonly observations: ObserveRegistry;
  readonly virtualObservables: VirtualObservables;
  readonly echoFreshness: EchoFreshness;
  /** Option numbers this server processes (RFC 7252 §5.4.1). */
  readonly recognized: ReadonlySet<number>;
  /** Names under which proxied requests are for this server itself (ServerOptions.proxyNames). */
  readonly proxyNames: ReadonlySet<string>;
  /** CoAP group communication: the joined group, Group OSCORE contexts, Leisure (ServerOptions.group). */
  readonly group: GroupServing | undefined;
  readonly scheduler: Scheduler;
  readonly random: RandomSource;
}

export function serverStages(parts: ServerParts): ServerStage[] {
  const groupOscore = new GroupOscore(parts.group, parts.random, parts.log);
  const oscoreLayers = new OscoreLayers(parts.settings, parts.proxies, parts.log, (request, message, context) => groupOscore.removeLayer(request, message, context));
  return [
    // RFC 8613 §8.2.1: outer Block1/Block2 of an OSCORE message. Out: outer Block1 echo, Block2 slicing.
    new OuterBlockwise(parts.settings, parts.blockwise, parts.log),
    // RFC 9668 §3.3.1: an EDHOC + OSCORE request completes EDHOC (EDHOC error, unprotected) and goes on as OSCORE.
    new EdhocCombined(parts.settings, parts.proxies),
    // Group OSCORE §7.2/§8.4 (verified, Echo §9). Out: §7.3/§8.5 protection.
    groupOscore,
    // groupcomm-bis §3.1: marks group requests. Out: §3.1.2 suppression, RFC 7252 §8.2 Leisure.
    new GroupRequests(parts.group, parts.scheduler, () => parts.random.float()),
    // KUDOS §4.3.7: a peer's requests wait while an update this server started with it runs.
    new KudosGate(parts.settings),
    // oscore-capable-proxies §2.4 steps 5–6 (§2.1 limit). Out: the removed layers back on (§2.5).
    oscoreLayers,
    // Out: RFC 7967 No-Response.
    new NoResponse(),
    // Out: ServerOptions.onRequestLog.
    new RequestLogging(parts.log),
    // §2.4 steps 1–4: the forward proxy, a reverse proxy; step 4's local request resumes at oscoreLayers.
    new ProxyClaim(parts.proxies, parts.observations, parts.virtualObservables, oscoreLayers),
    // RFC 7252 §5.4 (4.02), §5.7.2 (5.05), §5.8 (4.05), RFC 7959 §2.2 (SZX 7: 4.00).
    new OptionChecks(parts.recognized, parts.proxyNames),
    // 4.04, requireOscore (4.01), 4.05, RFC 9175 Echo freshness (4.01).
    new Route(parts.router, parts.echoFreshness),
    // RFC 7959 §2.4: later blocks from the stored representation. Out: slicing.
    new Block2(parts.blockwise),
    // Out: RFC 7641 §4.1 (de)registration.
    new ObserveStage(parts.observations),
    // RFC 7959 §2.5 reassembly (2.31/4.08/4.13). Out: Block1 echoed.
    new Block1Reassembly(parts.blockwise),
    // The resource handler; its response with the §5.10.4 Accept check (4.06).
    new HandlerStage(),
  ];
}
