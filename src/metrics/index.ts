/**
 * Server metrics in the Prometheus text format (exposition format 0.0.4), fed from the server's
 * request log: requests by response class and protection, OSCORE refusals by reason (RFC 8613
 * §8.2 diagnostics, B.1.2 Echo challenges), replay refusals. Served with a health resource on a
 * plain HTTP port for a balancer or a scraper (`coapsec serve --metrics HOST:PORT`).
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

export class ServerMetrics {
  readonly #requests = new LabelledCounter('coapsec_requests_total', 'Requests answered, by response class and protection.', ['class', 'protection']);
  readonly #oscoreFailures = new LabelledCounter('coapsec_oscore_failures_total', 'Requests the OSCORE layer refused, by reason.', ['reason']);
  readonly #replays = new LabelledCounter('coapsec_replay_refusals_total', 'OSCORE requests refused as replays (RFC 8613 §7.4).', []);
  readonly #echo = new LabelledCounter('coapsec_echo_challenges_total', 'Echo challenges sent to clients without a replay window (RFC 8613 Appendix B.1.2).', []);

  /** A RequestLogger: pass as `onRequestLog` (or call from one). */
  readonly record = (entry: RequestLogEntry): void => {
    this.#requests.add([`${entry.response.code >> 5}xx`, entry.protection]);
    const reason = entry.oscoreFailure;
    if (reason === undefined) return;
    this.#oscoreFailures.add([reason]);
    if (/replay/i.test(reason)) this.#replays.add([]);
    if (/Echo challenge/.test(reason)) this.#echo.add([]);
  };

  render(): string {
    return [this.#requests, this.#oscoreFailures, this.#replays, this.#echo].map((c) => c.render()).join('\n') + '\n';
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
