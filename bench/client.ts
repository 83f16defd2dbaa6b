/**
 * Benchmark client child: `node dist/bench/client.js '<ClientJob as JSON>'`. Keeps `concurrency`
 * CON GET requests in flight (closed loop: each completion starts the next request) for a warm-up
 * and then a measurement window, reports requests/s and latency percentiles to the parent, and
 * exits. Every loop is bounded by the clock and by job.maxRequests.
 */
import dgram from 'node:dgram';
import { createRequire } from 'node:module';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { floorOf } from './aead-floor.js';
import { minimalCoapClient, minimalOscoreClient } from './coap-minimal-client.js';
import { Method } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import type { ReceivedResponse } from '../src/exchange/endpoint.js';
import { processCpuMicros } from './harness.js';
import {
  BENCH_NSTART,
  CLIENT_RUNGS,
  DTLS_PSK,
  OSCORE_MASTER_SALT,
  OSCORE_MASTER_SECRET,
  PAYLOAD,
  RAW_REQUEST_SIZE,
  Recorder,
  benchRpk,
  percentile,
  sizeSocketBuffers,
  type ClientJob,
  type ClientResult,
  type Variant,
} from './common.js';

type NodeCoap = typeof import('coap');

const HOST = '127.0.0.1';
const RAMP_BATCH = 16;
const RAMP_INTERVAL_MS = 2;

/** The first failure's description (coapsec), reported to the parent. */
let firstError: string | undefined;

interface Driver {
  /** Starts one request; calls done(ok) exactly once when it completes or fails. */
  send(done: (ok: boolean) => void): void;
  retransmissions(): number;
  close(): Promise<void>;
}

/** Busy-waits `micros` µs: stands for per-request CPU work that an extra layer would add. */
function burn(micros: number): void {
  const until = performance.now() + micros / 1000;
  while (performance.now() < until) {
    /* spin */
  }
}

interface Target {
  path: string;
  payloadLength: number;
  scheme: 'coap' | 'coap+tcp' | 'coaps';
}

async function coapsecDriver(port: number, socketBuffer: number, variant: Variant, sequenceStart: number, target: Target, proxyPort?: number, burnMicros = 0): Promise<Driver> {
  const buffers = socketBuffer > 0 ? { receiveBufferSize: socketBuffer, sendBufferSize: socketBuffer } : {};
  // OSCORE: one security context and one sequence for the whole process, returned for every URI.
  const oscore =
    variant === 'oscore'
      ? new OscoreClientSecurity(
          new OscoreSecurityContext(
            { masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: Buffer.alloc(0), recipientIds: [Buffer.from('01', 'hex')] },
            new VolatileSequence(sequenceStart),
          ),
        )
      : undefined;
  const client = new CoapClient({
    parameters: { nstart: BENCH_NSTART },
    ...buffers,
    ...(proxyPort !== undefined ? { proxy: `coap://${HOST}:${proxyPort}` } : {}),
    ...(oscore ? { security: () => oscore } : {}),
    ...(variant === 'dtls' ? { dtls: { psk: DTLS_PSK, ...buffers } } : {}),
    ...(variant === 'dtls-rpk' ? { dtls: { rpk: benchRpk('client'), ...buffers } } : {}),
  });
  const floor = floorOf(variant, 'client');
  const scheme = variant === 'dtls' || variant === 'dtls-rpk' ? 'coaps' : target.scheme;
  const uri = `${scheme}://${HOST}:${port}${target.path}`;
  // Over TCP there are no retransmissions to count (RFC 8323 §2: reliability is the connection's).
  const endpoint = scheme === 'coap+tcp' ? undefined : await client.endpoint(4, scheme);
  return {
    send(done) {
      if (burnMicros > 0) burn(burnMicros);
      floor?.seal();
      client.get(uri).then(
        (r) => {
          floor?.open();
          const ok = r.code === 69 && r.payload.length === target.payloadLength;
          if (!ok) firstError ??= `response ${r.code >> 5}.${String(r.code & 31).padStart(2, '0')} ${Buffer.from(r.payload).toString('utf8', 0, 80)}`;
          done(ok);
        },
        (e: unknown) => {
          firstError ??= String((e as Error)?.message ?? e);
          done(false);
        },
      );
    },
    retransmissions: () => endpoint?.stats().retransmissions ?? 0,
    close: () => client.close(),
  };
}


/** A driver whose send resolves a promise from the datagram's callback and completes when this awaits it. */
function awaited(driver: Driver): Driver {
  return {
    ...driver,
    send(done) {
      new Promise<boolean>((resolve) => driver.send(resolve)).then(done);
    },
  };
}

/**
 * `awaited`, with the promises of the replies that arrived in one turn of the event loop settled
 * together from one setImmediate: one microtask checkpoint that runs for all of them instead of
 * one per datagram.
 */
function awaitedInBatches(driver: Driver): Driver {
  let settling: Array<() => void> = [];
  const settleAll = (): void => {
    const now = settling;
    settling = [];
    for (const settle of now) settle();
  };
  return {
    ...driver,
    send(done) {
      new Promise<boolean>((resolve) =>
        driver.send((ok) => {
          if (settling.length === 0) setImmediate(settleAll);
          settling.push(() => resolve(ok));
        }),
      ).then(done);
    },
  };
}

async function rungDriver(rung: string, port: number, concurrency: number, socketBuffer: number, target: Target): Promise<Driver> {
  if (!(CLIENT_RUNGS as readonly string[]).includes(rung)) throw new Error(`unknown client rung ${rung}`);
  const [base, extra] = rung.split('+');
  if (base === 'floor') {
    const all = extra === 'all';
    const driver = await minimalCoapClient(port, concurrency, socketBuffer, target.path, target.payloadLength, { codec: all || extra === 'codec', pending: all || extra === 'pending' });
    if (extra?.startsWith('burn')) {
      const micros = Number(extra.slice('burn'.length));
      return { ...driver, send: (done) => (burn(micros), driver.send(done)) };
    }
    if (extra === 'batch') return awaitedInBatches(driver);
    return all || extra === 'promise' ? awaited(driver) : driver;
  }
  const buffers = socketBuffer > 0 ? { receiveBufferSize: socketBuffer, sendBufferSize: socketBuffer } : {};
  const client = new CoapClient({ parameters: { nstart: BENCH_NSTART }, ...buffers, fastPath: rung !== 'layered' });
  const endpoint = await client.endpoint(4, 'coap');
  if (rung === 'layered') {
    const uri = `coap://${HOST}:${port}${target.path}`;
    return {
      send(done) {
        client.get(uri).then(
          (r) => done(r.code === 69 && r.payload.length === target.payloadLength),
          () => done(false),
        );
      },
      retransmissions: () => endpoint.stats().retransmissions,
      close: () => client.close(),
    };
  }
  const peer = { address: HOST, port };
  const uriPath = target.path
    .split('/')
    .filter((s) => s.length > 0)
    .map((segment) => ({ number: OptionNumber.UriPath, value: Buffer.from(segment, 'utf8') }));
  const options = { confirmable: true };
  const isGood = (r: ReceivedResponse): boolean => r.message.code === 69 && r.message.payload.length === target.payloadLength;
  const request = () => ({ type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options: uriPath.slice(), payload: EMPTY_BYTES });
  const sender: Driver = {
    send(done) {
      endpoint.send(request(), peer, options, { onResponse: (r) => done(isGood(r)), onError: () => done(false) });
    },
    retransmissions: () => endpoint.stats().retransmissions,
    close: () => client.close(),
  };
  if (extra !== 'promise') return sender;
  return {
    ...sender,
    send(done) {
      endpoint.request(request(), peer, options).then(
        (r) => done(isGood(r)),
        () => done(false),
      );
    },
  };
}

async function nodeCoapDriver(port: number, socketBuffer: number): Promise<Driver> {
  const coap = createRequire(import.meta.url)('coap') as NodeCoap;
  // An agent on a socket of our own: node-coap then never closes and reopens the socket when its
  // request count drops to zero (it does with the global agent), and it has no in-flight limit.
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, HOST, () => resolve()));
  sizeSocketBuffers(socket, socketBuffer);
  const agent = new coap.Agent({ socket });
  return {
    send(done) {
      let finished = false;
      const finish = (ok: boolean): void => {
        if (finished) return;
        finished = true;
        done(ok);
      };
      const req = coap.request({ hostname: HOST, port, pathname: '/bench', method: 'GET', confirmable: true, agent });
      req.on('response', (res: { code: string; payload: Buffer }) => finish(res.code === '2.05' && res.payload.length === PAYLOAD.length));
      req.on('error', () => finish(false));
      req.on('timeout', () => finish(false));
      req.end();
    },
    retransmissions: () => -1,
    close: async () => {
      agent.close();
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

/**
 * Raw UDP: up to `concurrency` slots, each with one datagram outstanding; the first 8 bytes of a
 * request are the slot and a sequence number, which the echo server copies into its reply. A slot
 * silent for 500 ms re-sends with a new sequence number (counted as a retransmission).
 */
async function rawDriver(port: number, concurrency: number, socketBuffer: number): Promise<Driver> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, HOST, () => resolve()));
  sizeSocketBuffers(socket, socketBuffer);
  const callbacks: Array<((ok: boolean) => void) | undefined> = new Array(concurrency).fill(undefined);
  const sequence = new Uint32Array(concurrency);
  const sentAt = new Float64Array(concurrency);
  const free: number[] = [];
  for (let i = concurrency - 1; i >= 0; i--) free.push(i);
  let resent = 0;
  const transmit = (slot: number): void => {
    const buf = Buffer.alloc(RAW_REQUEST_SIZE);
    buf.writeUInt32BE(slot, 0);
    buf.writeUInt32BE(sequence[slot]!, 4);
    sentAt[slot] = performance.now();
    socket.send(buf, port, HOST);
  };
  socket.on('message', (msg) => {
    if (msg.length !== PAYLOAD.length) return;
    const slot = msg.readUInt32BE(0);
    const cb = callbacks[slot];
    if (slot >= concurrency || !cb || msg.readUInt32BE(4) !== sequence[slot]) return; // stale reply
    callbacks[slot] = undefined;
    sequence[slot] = (sequence[slot]! + 1) >>> 0;
    free.push(slot);
    cb(true);
  });
  socket.on('error', () => {});
  const watchdog = setInterval(() => {
    const now = performance.now();
    for (let slot = 0; slot < concurrency; slot++) {
      if (callbacks[slot] && now - sentAt[slot]! > 500) {
        resent++;
        sequence[slot] = (sequence[slot]! + 1) >>> 0;
        transmit(slot);
      }
    }
  }, 100);
  return {
    send(done) {
      const slot = free.pop();
      if (slot === undefined) {
        done(false);
        return;
      }
      callbacks[slot] = done;
      transmit(slot);
    },
    retransmissions: () => resent,
    close: async () => {
      clearInterval(watchdog);
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

async function run(job: ClientJob): Promise<ClientResult> {
  const driver =
    job.impl === 'raw'
      ? await rawDriver(job.port, job.concurrency, job.socketBuffer)
      : job.impl === 'coapsec' && job.clientRung !== undefined
        ? await rungDriver(job.clientRung, job.port, job.concurrency, job.socketBuffer, { path: job.path ?? '/bench', payloadLength: job.payloadLength ?? PAYLOAD.length, scheme: 'coap' })
      : job.impl === 'coapsec' && job.minimalClient && job.variant === 'oscore'
        ? await minimalOscoreClient(job.port, job.concurrency, job.socketBuffer, job.path ?? '/bench', job.payloadLength ?? PAYLOAD.length, job.sequenceStart ?? 0)
      : job.impl === 'coapsec' && job.minimalClient
        ? await minimalCoapClient(job.port, job.concurrency, job.socketBuffer, job.path ?? '/bench', job.payloadLength ?? PAYLOAD.length)
        : job.impl === 'coapsec'
        ? await coapsecDriver(
            job.port,
            job.socketBuffer,
            job.variant ?? 'plain',
            job.sequenceStart ?? 0,
            { path: job.path ?? '/bench', payloadLength: job.payloadLength ?? PAYLOAD.length, scheme: job.scheme ?? 'coap' },
            job.proxyPort,
            job.burnMicros,
          )
        : await nodeCoapDriver(job.port, job.socketBuffer);
  const recorder = new Recorder();
  const cpu0 = process.cpuUsage();
  let totalCompleted = 0;
  // The steady-state window, from timers (warm-up and JIT excluded): completions and CPU between them.
  let window: ClientResult['window'];
  const serverCpu = (): number => (job.serverPid !== undefined ? processCpuMicros(job.serverPid) : NaN);
  let opened: { completed: number; client: NodeJS.CpuUsage; server: number } | undefined;
  const closeWindow = (): void => {
    if (!opened || window) return;
    const client = process.cpuUsage(opened.client);
    window = { completed: totalCompleted - opened.completed, clientCpuMicros: client.user + client.system, serverCpuMicros: serverCpu() - opened.server };
  };
  setTimeout(() => {
    opened = { completed: totalCompleted, client: process.cpuUsage(), server: serverCpu() };
    setTimeout(closeWindow, job.durationMs);
  }, job.warmupMs);
  const t0 = performance.now();
  recorder.start = t0 + job.warmupMs;
  recorder.end = recorder.start + job.durationMs;
  let started = 0;
  let inFlight = 0;
  let errors = 0;
  let onIdle: (() => void) | undefined;

  // Closed loop: `concurrency` chains, each starting its next request when the previous completes.
  const next = (): void => {
    if (started >= job.maxRequests || performance.now() >= recorder.end) {
      if (inFlight === 0) onIdle?.();
      return;
    }
    started++;
    inFlight++;
    const sentAt = performance.now();
    driver.send((ok) => {
      inFlight--;
      if (ok) {
        totalCompleted++;
        recorder.record(sentAt, performance.now());
      } else errors++;
      // After a failure, wait a turn: a target that fails synchronously must not spin the loop.
      if (ok) next();
      else setImmediate(next);
    });
  };
  // Ramp up: RAMP_BATCH chains every RAMP_INTERVAL_MS. Starting 256 at once overflows the server's
  // default socket receive buffer (~200 datagrams of this size) and costs the dropped CON requests
  // a 2-3 s retransmission timeout, which would land in the measurement window.
  let chains = 0;
  const ramp = (): void => {
    for (let i = 0; i < RAMP_BATCH && chains < job.concurrency; i++, chains++) next();
    if (chains < job.concurrency) setTimeout(ramp, RAMP_INTERVAL_MS);
  };
  ramp();

  // Wait for the window to end and the requests still in flight to finish (bounded by drainMs).
  await new Promise<void>((resolve) => {
    const deadline = setTimeout(resolve, job.warmupMs + job.durationMs + job.drainMs);
    onIdle = () => {
      clearTimeout(deadline);
      resolve();
    };
    if (inFlight === 0) onIdle();
  });
  closeWindow(); // if the last request finished before the window's timer fired
  const abandoned = inFlight;
  const cpu = process.cpuUsage(cpu0);
  const retransmissions = driver.retransmissions();
  const closing = driver.close().catch(() => {});
  await Promise.race([closing, new Promise((r) => setTimeout(r, 1000).unref())]);

  const seconds = job.durationMs / 1000;
  const sorted = recorder.sortedLatencies();
  return {
    type: 'result',
    impl: job.impl,
    concurrency: job.concurrency,
    completed: recorder.completed,
    seconds,
    rps: recorder.completed / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    errors,
    retransmissions,
    abandoned,
    totalCompleted,
    clientCpuMicros: cpu.user + cpu.system,
    clientSystemMicros: cpu.system,
    ...(window ? { window } : {}),
    ...(firstError !== undefined ? { firstError } : {}),
  };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as ClientJob;
  const result = await run(job);
  if (process.send) {
    await new Promise<void>((resolve) => process.send!(result, () => resolve()));
  } else {
    console.log(JSON.stringify(result));
  }
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(`bench client: ${(error as Error).stack ?? error}`);
  process.exit(1);
});
