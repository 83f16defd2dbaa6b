import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
/**
 * Shared by the benchmark's orchestrator (run.ts), server children (server.ts) and client
 * children (client.ts): the implementations, the payload, the messages exchanged over IPC.
 */

export const IMPLEMENTATIONS = ['raw', 'coapsec', 'node-coap'] as const;
export type Impl = (typeof IMPLEMENTATIONS)[number];

export const isImpl = (s: string): s is Impl => (IMPLEMENTATIONS as readonly string[]).includes(s);

/** The response payload: exactly 20 bytes. */
export const PAYLOAD = Buffer.from('0123456789abcdefghij', 'ascii');
if (PAYLOAD.length !== 20) throw new Error('payload must be 20 bytes');

/** Size of a raw-echo request datagram (a CoAP GET for /bench with an 8-byte token is 18-21 bytes). */
export const RAW_REQUEST_SIZE = 24;

/**
 * NSTART for coapsec (RFC 7252 §4.7 defaults to 1 per peer). The benchmark raises it on both the
 * client and the server endpoint so that 32 or 256 CON requests can be outstanding towards one
 * server. node-coap does not enforce NSTART at all; the raw echo has no such notion.
 */
export const BENCH_NSTART = 256;

/** Sent by a server child once it listens. */
export interface ServerReady {
  type: 'ready';
  impl: Impl;
  port: number;
}

/**
 * The rungs between the floor and the coapsec client (ClientJob.clientRung; bench/client.ts), each adding some of
 * the client's per-request work, so its cost under sockets can be attributed (issue 21):
 * `floor+X` is bench/coap-minimal-client.ts with X — `promise` (a promise per request, resolved
 * from the datagram's callback and awaited here, as `client.get(uri).then(…)` is), `batch` (that promise settled from one setImmediate per turn of the event loop with the others
 * of its turn: one microtask checkpoint per turn, not per datagram), `codec`, `pending`, `all` (the three), `burn3` (3 µs of spinning per request: does a µs of our JavaScript cost a µs under
 * sockets, or more, by the rate it lowers?); `endpoint` is coapsec's exchange and messaging layers without the
 * client above them (`CoapEndpoint.send` with a handler object per request), `endpoint+promise`
 * the same through `CoapEndpoint.request`'s promise; `layered` the coapsec client with `fastPath: false`
 * (client/fast-request.ts off: every request through the layers), `client.get(uri)` as `plain`.
 */
export const CLIENT_RUNGS = ['floor', 'floor+promise', 'floor+batch', 'floor+codec', 'floor+pending', 'floor+all', 'floor+burn3', 'endpoint', 'endpoint+promise', 'layered'] as const;

/** What the orchestrator asks a client child to do (passed as JSON in argv[2]). */
export interface ClientJob {
  impl: Impl;
  port: number;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** Upper bound on requests started, whatever the clock says. */
  maxRequests: number;
  /** How long to wait for stragglers after the measurement window before giving up on them. */
  drainMs: number;
  /** SO_RCVBUF/SO_SNDBUF for the client socket in bytes; 0 keeps the OS default. */
  socketBuffer: number;
  /** coapsec only: plain CoAP (default), OSCORE-protected CoAP, or CoAP over DTLS-PSK (coaps://). */
  variant?: Variant;
  /**
   * OSCORE: the first Sender Sequence Number of this client process. The server's context outlives
   * the client processes, so each client must start above every number an earlier one used, or
   * the server's replay window rejects its requests (4.01).
   */
  sequenceStart?: number;
  /**
   * coapsec only: spin this many µs of CPU on the client before each request (bench/cpu-budget.ts):
   * what a given amount of extra per-request work, such as a security layer's, costs in req/s.
   */
  burnMicros?: number;
  /** coapsec plain only: send every request through the forward proxy at 127.0.0.1:proxyPort (bench/proxy.ts). */
  proxyPort?: number;
  /** coapsec: the path to GET (default /bench) and the payload length a good response has (default 20). */
  path?: string;
  payloadLength?: number;
  /** coapsec plain only: the URI scheme, for CoAP over TCP (bench/transports.ts); default coap. */
  scheme?: 'coap' | 'coap+tcp';
  /** coapsec plain only: bench/coap-minimal-client.ts's floor instead of the coapsec client (bench/server-cpu.ts). */
  minimalClient?: boolean;
  /** coapsec plain only: a rung between that floor and the client instead of the client: one of CLIENT_RUNGS. */
  clientRung?: string;
  /** When set, the client also reads this process's CPU time (/proc) at the window's edges (bench/server-cpu.ts). */
  serverPid?: number;
}

/**
 * How a coapsec client/server pair talks (bench/oscore.ts and bench/dtls.ts): plain CoAP over UDP,
 * OSCORE (RFC 8613, AES-CCM-16-64-128) over UDP, or CoAP over DTLS 1.2 with TLS_PSK_WITH_AES_128_CCM_8
 * ('dtls') or TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 with raw public keys ('dtls-rpk', server-only authentication);
 * 'aead-floor', 'aead-floor-batched' and 'record-floor' are plain CoAP plus only the AEAD work an OSCORE GET or a DTLS
 * record per datagram costs each side (bench/aead-floor.ts).
 */
export const VARIANTS = ['plain', 'oscore', 'dtls', 'dtls-rpk', 'aead-floor', 'aead-floor-batched', 'record-floor'] as const;
export type Variant = (typeof VARIANTS)[number];
export const isVariant = (s: string): s is Variant => (VARIANTS as readonly string[]).includes(s);

/** Benchmark-only OSCORE keying material (RFC 8613 Appendix C.1.1's test vector secret and salt). */
export const OSCORE_MASTER_SECRET = Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex');
export const OSCORE_MASTER_SALT = Buffer.from('9e7ca92223786340', 'hex');
/** Replay window on the server: with 256 requests in flight, Partial IVs arrive reordered by more than 32. */
export const OSCORE_REPLAY_WINDOW = 1024;

/** Benchmark-only DTLS pre-shared key. */
export const DTLS_PSK = { identity: 'bench', key: Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex') };
export const TLS_PSK_WITH_AES_128_CCM_8 = 0xc0a8;
export const TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 = 0xc0ae;

/** Benchmark-only P-256 keys (generated with openssl for this file; they protect nothing). */
export const BENCH_SERVER_KEY_PEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsuHqhxoZDQvmGPH9
slP2cPhHx81ovz+x4pZ7nI9xGTWhRANCAAScwqRuyz+kiSa90Hl3NKDipYWxAJQ8
Pqppc0egrCs5TKdC3+jJMTmepOmO2AuMP7dM/K8pd6DQcpQnxj1gy8rZ
-----END PRIVATE KEY-----
`;
export const BENCH_CLIENT_KEY_PEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgUc9mKzkF0eifvK5i
RfLFcfnqg492zo98lGdfdVtMwwKhRANCAATwxhUAM1rpFaxSbOpidi2ua3+0M8Xi
wrxx6RUyJ11h/TiE+nF2yLHzlJmfqDpfq2D7MrbFbKO74/NwBaLvtAnR
-----END PRIVATE KEY-----
`;
/** RPK credentials: the server authenticates with its key; the client trusts it and is not asked for one. */
export function benchRpk(side: 'client' | 'server'): { privateKey: KeyObject; trustedPeerKeys: KeyObject[] } {
  const server = createPrivateKey(BENCH_SERVER_KEY_PEM);
  return side === 'server'
    ? { privateKey: server, trustedPeerKeys: [] }
    : { privateKey: createPrivateKey(BENCH_CLIENT_KEY_PEM), trustedPeerKeys: [createPublicKey(server)] };
}

/** Sets both socket buffer sizes when `bytes` > 0 (capped by the OS, e.g. net.core.rmem_max). */
export function sizeSocketBuffers(socket: { setRecvBufferSize(n: number): void; setSendBufferSize(n: number): void }, bytes: number): void {
  if (bytes <= 0) return;
  socket.setRecvBufferSize(bytes);
  socket.setSendBufferSize(bytes);
}

export interface ClientResult {
  type: 'result';
  impl: Impl;
  concurrency: number;
  /** Responses completed inside the measurement window. */
  completed: number;
  /** Length of the measurement window in seconds. */
  seconds: number;
  rps: number;
  /** Latency percentiles in milliseconds over the requests completed inside the window. */
  p50: number;
  p99: number;
  /** Failed requests (errors, wrong payloads) during the whole run. */
  errors: number;
  /** Retransmissions (coapsec, from endpoint stats) or re-sends after 500 ms (raw); -1 if unknown. */
  retransmissions: number;
  /** Requests still unanswered when the client gave up draining. */
  abandoned: number;
  /** Responses completed over the whole run, warm-up included (the denominator of the CPU costs). */
  totalCompleted: number;
  /** Client process CPU time (user + system) over the whole run, in microseconds. */
  clientCpuMicros: number;
  /** The system (kernel) part of clientCpuMicros. */
  clientSystemMicros: number;
  /** Filled in by the orchestrator: server process CPU time over the client's run (Linux /proc), µs. */
  serverCpuMicros?: number;
  /** The first failure's description (coapsec only), when there were errors. */
  firstError?: string;
  /** Filled in by the orchestrator: UDP receive-buffer drops on the host during the run (Linux). */
  rcvbufDrops?: number;
  /**
   * Steady state: requests completed between the two timer callbacks that open and close the
   * measurement window, the client's CPU time between them, and (with job.serverPid) the server's.
   */
  window?: { completed: number; clientCpuMicros: number; serverCpuMicros: number };
}

/** Nearest-rank percentile of an ascending-sorted sample. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/**
 * Collects completion times and latencies of requests finishing inside [start, end).
 * Bounded: at most `capacity` latency samples are kept (the count goes on).
 */
export class Recorder {
  private readonly samples: Float64Array;
  private n = 0;
  completed = 0;
  start = Infinity;
  end = Infinity;

  constructor(capacity = 1 << 21) {
    this.samples = new Float64Array(capacity);
  }

  record(sentAt: number, now: number): void {
    if (now < this.start || now >= this.end) return;
    this.completed++;
    if (this.n < this.samples.length) this.samples[this.n++] = now - sentAt;
  }

  sortedLatencies(): Float64Array {
    return this.samples.subarray(0, this.n).sort();
  }
}
