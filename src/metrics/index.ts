/**
 * Server and proxy metrics in the Prometheus text format (exposition format 0.0.4), fed from the
 * server's request log: requests by response class and protection, OSCORE refusals by reason (RFC
 * 8613 §8.2 diagnostics, B.1.2 Echo challenges), replay refusals; from a metered context store
 * (store-metrics.ts): Sender Sequence Number reservations by outcome and their latency; and values
 * read at each scrape (`sample`): contexts resident, EDHOC sessions, a proxy's cache. Served with
 * a health resource on a plain HTTP port for a balancer or a scraper (`coapsec serve --metrics
 * HOST:PORT`, `coapsec proxy --metrics HOST:PORT`).
 * Label sets are bounded: reasons are the server's own fixed diagnostics, not peer input.
 */
import { createServer, type Server } from 'node:http';
import type { RequestLogEntry } from '../server/request-log.js';

const MAX_SERIES_PER_METRIC = 64;

class LabelledCounter {
  readonly #values = new Map<string, number>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  add(labels: readonly string[]): void {
    const key = labels.map((v, i) => `${this.labelNames[i]}="${escapeLabel(v)}"`).join(',');
    if (!this.#values.has(key) && this.#values.size >= MAX_SERIES_PER_METRIC) return;
    this.#values.set(key, (this.#values.get(key) ?? 0) + 1);
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.labelNames.length === 0) lines.push(`${this.name} ${this.#values.get('') ?? 0}`);
    else for (const [key, value] of this.#values) lines.push(`${this.name}{${key}} ${value}`);
    return lines.join('\n');
  }
}

/** Upper bounds (seconds) of the reservation latency histogram: one fsync'd Redis round trip is a few ms. */
const RESERVATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

class Histogram {
  readonly #counts = new Array<number>(RESERVATION_BUCKETS.length).fill(0);
  #sum = 0;
  #count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  observe(seconds: number): void {
    this.#sum += seconds;
    this.#count++;
    const bucket = RESERVATION_BUCKETS.findIndex((le) => seconds <= le);
    if (bucket >= 0) this.#counts[bucket]!++;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    let cumulative = 0;
    RESERVATION_BUCKETS.forEach((le, i) => {
      cumulative += this.#counts[i]!;
      lines.push(`${this.name}_bucket{le="${le}"} ${cumulative}`);
    });
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.#count}`, `${this.name}_sum ${this.#sum}`, `${this.name}_count ${this.#count}`);
    return lines.join('\n');
  }
}

/** A value read when scraped (a gauge, or a counter kept elsewhere). */
interface Sample {
  readonly name: string;
  readonly help: string;
  readonly type: 'gauge' | 'counter';
  readonly read: () => number;
}

export class ServerMetrics {
  readonly #requests = new LabelledCounter('coapsec_requests_total', 'Requests answered, by response class and protection.', ['class', 'protection']);
  readonly #oscoreFailures = new LabelledCounter('coapsec_oscore_failures_total', 'Requests the OSCORE layer refused, by reason.', ['reason']);
  readonly #replays = new LabelledCounter('coapsec_replay_refusals_total', 'OSCORE requests refused as replays (RFC 8613 §7.4).', []);
  readonly #echo = new LabelledCounter('coapsec_echo_challenges_total', 'Echo challenges sent to clients without a replay window (RFC 8613 Appendix B.1.2).', []);
  readonly #reservations = new LabelledCounter('coapsec_store_reservations_total', 'Sender Sequence Number block reservations from the context store, by outcome.', ['outcome']);
  readonly #reservationLatency = new Histogram('coapsec_store_reservation_seconds', 'Time a Sender Sequence Number block reservation took (durable in the store when it succeeded).');
  readonly #samples = new Map<string, Sample>();

  /** A RequestLogger: pass as `onRequestLog` (or call from one). */
  readonly record = (entry: RequestLogEntry): void => {
    this.#requests.add([`${entry.response.code >> 5}xx`, entry.protection]);
    const reason = entry.oscoreFailure;
    if (reason === undefined) return;
    this.#oscoreFailures.add([reason]);
    if (/replay/i.test(reason)) this.#replays.add([]);
    if (/Echo challenge/.test(reason)) this.#echo.add([]);
  };

  /** One reservation from the context store: how long it took and whether it succeeded. */
  reservation(seconds: number, succeeded: boolean): void {
    this.#reservations.add([succeeded ? 'ok' : 'failed']);
    this.#reservationLatency.observe(seconds);
  }

  /**
   * A value read at each scrape, e.g. `coapsec_oscore_contexts_resident` from the server's
   * security. Registering a name again replaces its reader (a server started again).
   */
  sample(name: string, help: string, type: Sample['type'], read: () => number): void {
    this.#samples.set(name, { name, help, type, read });
  }

  render(): string {
    const samples = [...this.#samples.values()].map(({ name, help, type, read }) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${read()}`);
    return [...[this.#requests, this.#oscoreFailures, this.#replays, this.#echo, this.#reservations, this.#reservationLatency].map((c) => c.render()), ...samples].join('\n') + '\n';
  }
}

/** GET /metrics (Prometheus text) and GET /health ("ok" while the node serves) on HOST:PORT. */
export async function listenMetrics(metrics: ServerMetrics, host: string, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.method === 'GET' && request.url === '/metrics') {
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(metrics.render());
    } else if (request.method === 'GET' && request.url === '/health') {
      response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok\n');
    } else {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: /metrics or /health\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
export { MeteredStore } from './store-metrics.js';
