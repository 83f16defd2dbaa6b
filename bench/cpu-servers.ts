/**
 * The servers bench/server-cpu.ts and bench/contexts.ts put under native load, each started as its
 * own process pinned to the server core: `coapsec serve` (the CLI, as a user runs it; plain or with
 * OSCORE credentials), Debian's libcoap `coap-server-notls`, the Node `dgram` CoAP echo
 * (bench/coap-echo.ts) and the bench-only minimal CoAP responder (bench/coap-minimal.ts). Every
 * one answers GET /hello with a piggybacked 2.05 and the 18 bytes
 * "Hello from coapsec" (libcoap's copy is PUT there first: `-d` lets a client create resources).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { encodeMessage } from '../src/coap/codec.js';
import { Method } from '../src/coap/codes.js';
import { OSCORE_MASTER_SALT, OSCORE_MASTER_SECRET, OSCORE_REPLAY_WINDOW } from './common.js';
import { here } from './harness.js';
import { awaitResponse, getRequest, startServerProcess, stopServerProcess, type Pinning } from './native-load.js';

export const HELLO_PATH = '/hello';
export const HELLO = 'Hello from coapsec';

export interface RunningServer {
  child: ChildProcess;
  pid: number;
  /** Milliseconds from spawn to the first answer (load time, for many contexts). */
  readyMs: number;
  /** Requests the server logged as refused so far (OSCORE failures of `coapsec serve`). */
  refusals(): number;
  /** Stops the process and removes nothing: scratch files live in the load generator's directory. */
  stop(): Promise<void>;
}

/** A recipient of a server credentials file: the client's Sender ID and master secret. */
export interface BenchRecipient {
  recipientIdHex: string;
  masterSecretHex: string;
  /** The server's own Sender ID towards this client; default 01. */
  senderIdHex?: string;
  /** Default the benchmarks' OSCORE_MASTER_SALT. */
  masterSaltHex?: string;
}

/** The one client the server benchmark's OSCORE requests come from (Sender ID empty, as in bench/client.ts). */
export const BENCH_RECIPIENT: BenchRecipient = { recipientIdHex: '', masterSecretHex: OSCORE_MASTER_SECRET.toString('hex') };

/**
 * A credentials file (docs/credentials.md) with these recipients; the server's Sender ID is 01.
 * echoOnRestart false: the generator's precomputed requests cannot answer an Echo challenge, and
 * each server start has fresh state anyway.
 */
export function writeServerCredentials(dir: string, recipients: readonly BenchRecipient[]): string {
  const entries: Record<string, unknown> = {};
  for (const r of recipients) {
    entries[r.recipientIdHex] = {
      name: recipientName(r),
      context: {
        masterSecret: { hex: r.masterSecretHex },
        masterSalt: { hex: r.masterSaltHex ?? OSCORE_MASTER_SALT.toString('hex') },
        senderId: r.senderIdHex ?? '01',
        replayWindow: OSCORE_REPLAY_WINDOW,
        echoOnRestart: false,
      },
    };
  }
  const stateDirectory = mkdtempSync(join(dir, 'state-'));
  const file = join(dir, `server-${recipients.length}-${basename(stateDirectory)}.json`);
  writeFileSync(file, JSON.stringify({ stateDirectory, recipients: entries }));
  return file;
}

/** The name a credentials file of writeServerCredentials gives the recipient (for `--allow`). */
export const recipientName = (r: BenchRecipient): string => `device-${r.recipientIdHex || 'empty'}`;

const probe = (messageId: number, code: number = Method.GET, payload?: string): Buffer => {
  const message = getRequest(HELLO_PATH);
  message.messageId = messageId;
  message.code = code;
  if (payload !== undefined) message.payload = Buffer.from(payload, 'utf8');
  return encodeMessage(message);
};

async function started({ child, refusals }: ReturnType<typeof startServerProcess>, port: number, readyTimeoutMs: number): Promise<RunningServer> {
  const t0 = performance.now();
  try {
    await awaitResponse(port, probe(0x5a5a), child, readyTimeoutMs);
  } catch (error) {
    await stopServerProcess(child);
    throw error;
  }
  return { child, pid: child.pid!, readyMs: performance.now() - t0, refusals, stop: () => stopServerProcess(child) };
}

/** This tree's CLI; `--variant` benchmarks run another tree's (DIR/bin/coapsec). */
export const COAPSEC_BIN = here('../../bin/coapsec');

/** `coapsec serve` on 127.0.0.1:port with 1 MiB socket buffers; OSCORE when `credentials` is given. */
export function startCoapsecServe(pin: Pinning, port: number, scratch: string, credentials?: string, readyTimeoutMs = 20_000, bin = COAPSEC_BIN): Promise<RunningServer> {
  return startCoapsec(pin, port, scratch, ['serve', ...(credentials !== undefined ? ['--credentials', credentials] : [])], readyTimeoutMs, bin);
}

/** The coapsec CLI `bin` with `args`, bound to 127.0.0.1:port with 1 MiB socket buffers and state of its own. */
function startCoapsec(pin: Pinning, port: number, scratch: string, args: readonly string[], readyTimeoutMs: number, bin: string): Promise<RunningServer> {
  const stateDir = mkdtempSync(join(scratch, 'registry-'));
  const command = [process.execPath, bin, ...args, '--bind', `127.0.0.1:${port}`, '--socket-buffer', '1M'];
  return started(startServerProcess(pin, command, { ...process.env, COAPSEC_STATE_DIR: stateDir }), port, readyTimeoutMs);
}

/**
 * `coapsec proxy --forward` on 127.0.0.1:port with 1 MiB socket buffers, allowed to reach
 * 127.0.0.1, no cache; with `credentials`, an OSCORE-capable proxy forwarding only for the
 * clients named in `allow` (draft-ietf-core-oscore-capable-proxies §2.4 step 4); `nstart` other
 * than 1 (the CLI's default) as `--nstart`. Ready when it answers a GET of its own /hello (whatever the code).
 */
export function startCoapsecProxy(
  pin: Pinning,
  port: number,
  scratch: string,
  options: { credentials?: string; allow?: readonly string[]; nstart?: number; bin?: string } = {},
): Promise<RunningServer> {
  const args = ['proxy', '--forward', '--allow-destination', '127.0.0.1'];
  if (options.credentials !== undefined) args.push('--credentials', options.credentials);
  for (const name of options.allow ?? []) args.push('--allow', name);
  if (options.nstart !== undefined && options.nstart !== 1) args.push('--nstart', String(options.nstart));
  return startCoapsec(pin, port, scratch, args, 20_000, options.bin ?? COAPSEC_BIN);
}

/** libcoap's coap-server-notls with /hello created by a PUT (its default socket buffers: it has no option). */
export async function startLibcoap(pin: Pinning, port: number): Promise<RunningServer> {
  const server = await started(startServerProcess(pin, ['coap-server-notls', '-A', '127.0.0.1', '-p', String(port), '-d', '4', '-v', '0']), port, 10_000);
  const created = await awaitResponse(port, probe(0x5a5b, Method.PUT, HELLO), server.child, 5000);
  // 2.01 Created (or 2.04 Changed when it already existed).
  if (created[1] !== 0x41 && created[1] !== 0x44) {
    await server.stop();
    throw new Error(`coap-server-notls answered the PUT of ${HELLO_PATH} with code 0x${created[1]?.toString(16)}`);
  }
  return server;
}

/** The Node dgram CoAP echo (bench/coap-echo.ts). */
export function startDgramEcho(pin: Pinning, port: number): Promise<RunningServer> {
  return started(startServerProcess(pin, [process.execPath, here('coap-echo.js'), String(port), HELLO]), port, 10_000);
}

/** bench/proxy-minimal.ts: Node's floor for a forward proxy (`dgram` both legs), forwarding to 127.0.0.1:originPort. */
export function startMinimalForwarder(pin: Pinning, port: number, originPort: number): Promise<RunningServer> {
  return started(startServerProcess(pin, [process.execPath, here('proxy-minimal.js'), String(port), String(originPort)]), port, 10_000);
}

/** The bench-only minimal CoAP responder (bench/coap-minimal.ts) on coapsec's own socket layer. */
export function startMinimalCoap(pin: Pinning, port: number): Promise<RunningServer> {
  return started(startServerProcess(pin, [process.execPath, here('coap-minimal.js'), String(port), HELLO]), port, 10_000);
}

/** bench/coap-minimal-oscore.ts: the minimal responder plus OSCORE's AEAD work (answers BENCH_RECIPIENT's requests). */
export function startMinimalOscore(pin: Pinning, port: number): Promise<RunningServer> {
  return started(startServerProcess(pin, [process.execPath, here('coap-minimal-oscore.js'), String(port), HELLO]), port, 10_000);
}
