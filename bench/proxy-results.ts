/**
 * Results of the two proxy benchmarks (bench/proxy.ts, bench/oscore-proxy.ts): one client child
 * per measurement through an optional proxy child to an origin child, with each process's CPU
 * time. The per-request figures, the medians over rounds and the ratios both benchmarks report.
 */
import { median, type ClientResult } from './common.js';

export interface ProxiedResult extends ClientResult {
  label: string;
  round: number;
  originCpuMicros: number;
  /** NaN when the contender has no proxy. */
  proxyCpuMicros: number;
  /** The kernel part of proxyCpuMicros, where measured. */
  proxySystemMicros?: number;
  /** Upstream requests the proxy forwarded during the client's run (NaN without a proxy). */
  upstream: number;
}

export const perRequest = (micros: number, r: ClientResult): number => micros / r.totalCompleted;

export interface ProxiedSummary {
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p50: number;
  p99: number;
  /** CPU µs per request of each process. */
  client: number;
  proxy: number;
  origin: number;
  /** Share of the proxy's CPU spent in the kernel (NaN where not measured). */
  proxySystemShare: number;
  upstreamPerRequest: number;
  errors: number;
  retransmissions: number;
}

/** Medians over the rounds of one contender at one concurrency; undefined when it did not run. */
export function summarizeProxied(results: readonly ProxiedResult[], label: string, concurrency: number): ProxiedSummary | undefined {
  const rs = results.filter((r) => r.label === label && r.concurrency === concurrency);
  if (rs.length === 0) return undefined;
  const rps = rs.map((r) => r.rps);
  return {
    rps: median(rps),
    rpsMin: Math.min(...rps),
    rpsMax: Math.max(...rps),
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    client: median(rs.map((r) => perRequest(r.clientCpuMicros, r))),
    proxy: median(rs.map((r) => perRequest(r.proxyCpuMicros, r))),
    origin: median(rs.map((r) => perRequest(r.originCpuMicros, r))),
    proxySystemShare: median(rs.map((r) => (r.proxySystemMicros ?? NaN) / r.proxyCpuMicros)),
    upstreamPerRequest: median(rs.map((r) => r.upstream / r.totalCompleted)),
    errors: rs.reduce((a, r) => a + r.errors + r.abandoned, 0),
    retransmissions: rs.reduce((a, r) => a + Math.max(0, r.retransmissions), 0),
  };
}

/** Shared with the GET benchmarks; re-exported so the proxy benchmarks import their summaries from one place. */
export { perRoundRatio } from './harness.js';

/** CPU µs/request over all processes of a contender (a missing proxy counts 0). */
export const totalCpu = (x: ProxiedSummary): number => x.client + (Number.isFinite(x.proxy) ? x.proxy : 0) + x.origin;
/** The busiest process's CPU µs/request: the bound if every process had a core to itself. */
export const busiestCpu = (x: ProxiedSummary): number => Math.max(x.client, Number.isFinite(x.proxy) ? x.proxy : 0, x.origin);
