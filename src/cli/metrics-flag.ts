/**
 * `--metrics HOST:PORT` of serve and proxy: one ServerMetrics for the process, its HTTP port
 * (/metrics, /health), and per CoAP listener the request log and the values read at each scrape.
 */
import { ServerMetrics, listenMetrics } from '../metrics/index.js';
import type { CacheStats } from '../proxy/cache.js';
import type { ForwardProxy } from '../proxy/forward-proxy.js';
import type { CoapServer } from '../server/server.js';
import { parseBind } from './args.js';
import { UsageError } from './errors.js';

export const METRICS_FLAGS = { metrics: { type: 'string' } } as const;
export const METRICS_FLAG_USAGE = `  --metrics HOST:PORT  serve GET /metrics (Prometheus text: requests, OSCORE refusals by reason,
                     replays, Echo challenges, store reservations and their latency, contexts
                     resident) and GET /health over HTTP there, e.g. 127.0.0.1:9464`;

type ForwardStats = Pick<ForwardProxy['stats'], 'forwarded' | 'coalesced'>;

export interface MetricsPort {
  readonly metrics: ServerMetrics;
  /** Counts the server's requests. */
  attach(server: CoapServer): void;
  /** The OSCORE contexts held in memory (configured, fetched from the store), read at each scrape. */
  attachContexts(count: () => number): void;
  /**
   * A forward proxy's requests sent upstream and coalesced (its `stats`, summed over its listeners),
   * and its response cache: entries, bytes, hits and misses at each scrape.
   */
  attachProxy(forwarded: () => ForwardStats, cache?: () => CacheStats): void;
  close(): Promise<void>;
}

/** The metrics of `--metrics VALUE` (undefined without it); `listen` opens its port. */
export function metricsFromFlag(value: string | undefined): { metrics: ServerMetrics; listen(): Promise<MetricsPort> } | undefined {
  if (value === undefined) return undefined;
  const bind = parseBind(value, { host: '127.0.0.1', port: 9464 });
  const metrics = new ServerMetrics();
  return {
    metrics,
    listen: async () => {
      let http: Awaited<ReturnType<typeof listenMetrics>>;
      try {
        http = await listenMetrics(metrics, bind.host, bind.port);
      } catch (error) {
        throw new UsageError(`--metrics: cannot listen on ${bind.host}:${bind.port}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
      const address = http.address() as { address: string; port: number };
      process.stderr.write(`coapsec metrics on http://${address.address}:${address.port}/metrics\n`);
      return {
        metrics,
        attach(server) {
          const logged = server.onRequestLog;
          server.onRequestLog = (entry) => {
            logged?.(entry);
            metrics.record(entry);
          };
        },
        attachContexts(count) {
          metrics.sample('coapsec_oscore_contexts_resident', 'OSCORE security contexts held in memory (configured and fetched from the context store).', 'gauge', count);
        },
        attachProxy(forwarded, cache) {
          metrics.sample('coapsec_proxy_forwarded_total', 'Requests this proxy node sent upstream (those it answered itself are in coapsec_requests_total).', 'counter', () => forwarded().forwarded);
          metrics.sample('coapsec_proxy_coalesced_total', 'Requests that waited for an identical one already on its way upstream.', 'counter', () => forwarded().coalesced);
          if (cache === undefined) return;
          const stats = cache;
          metrics.sample('coapsec_proxy_cache_entries', "Responses in this proxy node's cache (each node has its own).", 'gauge', () => stats().entries);
          metrics.sample('coapsec_proxy_cache_bytes', "Bytes in this proxy node's cache.", 'gauge', () => stats().bytes);
          metrics.sample('coapsec_proxy_cache_hits_total', "Requests this proxy node answered from its cache.", 'counter', () => stats().hits);
          metrics.sample('coapsec_proxy_cache_misses_total', "Requests this proxy node's cache could not answer.", 'counter', () => stats().misses);
        },
        close: () => new Promise<void>((resolve) => http.close(() => resolve())),
      };
    },
  };
}

