/**
 * The hot paths of issue 21 without sockets: a coapsec client and a coapsec server in one process,
 * joined by an in-memory datagram pair, so the CPU they cost is JavaScript (and Node's crypto for
 * OSCORE) and not the kernel's per-datagram work. The socket figures are bench/server-cpu.ts's;
 * this one is for A/B of a change to our own code, which the socket benchmark cannot resolve on a
 * shared machine.
 *
 * A closed loop keeps `inFlight` GETs of /hello outstanding (each response starts the next
 * request). Datagrams are queued and delivered in batches from a macrotask, so each side's work
 * runs apart. The process's CPU time (process.cpuUsage, so other tenants of a shared machine do
 * not count) is split by the share of the wall time spent delivering to the server (until its
 * answers are queued; it answers synchronously): a tenant's preemption falls on either side in
 * proportion to its time, and cpuUsage itself costs several µs a call, too much to call per batch. `--server-only` instead feeds the server prepared request datagrams
 * (plain: one encoding with the Message ID and token patched; OSCORE: a pool protected beforehand
 * with fresh sequence numbers) and measures its CPU alone.
 *
 * `--client-only` answers the client's requests with canned responses instead of a server (OSCORE:
 * protected beforehand, one per sequence number);
 * `--aead-floor` times bench/aead-floor.ts's per-side AEAD work alone (OSCORE's floor).
 * (Instruction counts were tried instead of CPU time: this VM's `perf` has no instruction counter,
 * and cachegrind counts V8's compiler and GC threads too, whose work depends on timing; see
 * BENCHMARKS.md.)
 *
 * `--server-only --tree base=DIR` (repeatable) is an A/B of the server alone against other trees
 * (DIR: a checkout with `dist/src` compiled): each round runs this tree and every other tree in a
 * child process of its own, one after another in rotating order, each child warmed up as above
 * and measuring one round; the figures are per tree, and each other tree's ratio to this one per
 * round. The other trees' server modules are imported from DIR/dist/src (same module paths since
 * before issue 21), the request datagrams are this tree's encoding (the same bytes).
 *
 *   node dist/bench/micro-hotpath.js [--requests N] [--warmup N] [--in-flight 32,256] [--variants plain,oscore,layered] [--rounds R] [--server-only [--tree LABEL=DIR]... | --client-only | --aead-floor]
 */
import { execFileSync } from 'node:child_process';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { ContentFormat } from '../src/coap/content-format.js';
import { MessageType, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import type { MessageLayer } from '../src/messaging/message-layer.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { protectRequest, protectResponse, unprotectRequest } from '../src/oscore/protect.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import type { DatagramHandler, DatagramTransport, PeerAddress } from '../src/transport/transport.js';
import { OscoreAeadFloor } from './aead-floor.js';
import { OSCORE_MASTER_SALT, OSCORE_MASTER_SECRET } from './common.js';
import { labelledDir } from './harness.js';

/**
 * `layered`: plain with the server's fast path off (`fastPath: false`), every request through the
 * stages; `oscore-layered`: OSCORE with it off (no fast path for the inner request either).
 */
type Variant = 'plain' | 'oscore' | 'layered' | 'oscore-layered';
const isOscore = (variant: Variant): boolean => variant === 'oscore' || variant === 'oscore-layered';

const SERVER_ADDRESS: PeerAddress = { address: '127.0.0.1', port: 5683 };
const CLIENT_ADDRESS: PeerAddress = { address: '127.0.0.1', port: 40000 };
const CLIENT_ID = Buffer.alloc(0);
const SERVER_ID = Buffer.from('01', 'hex');

/** The server side of the pair: a DatagramTransport whose sends are queued for the client. */
class QueueTransport implements DatagramTransport {
  readonly scheme = 'coap' as const;
  handler: DatagramHandler = () => {};
  readonly outbox: Uint8Array[] = [];
  setHandler(handler: DatagramHandler): void {
    this.handler = handler;
  }
  send(data: Uint8Array): void {
    this.outbox.push(data);
  }
  localAddress(): PeerAddress {
    return SERVER_ADDRESS;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function serverContext(): OscoreSecurityContext {
  return new OscoreSecurityContext(
    { masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: SERVER_ID, recipientIds: [CLIENT_ID], replayWindow: 4096 },
    new VolatileSequence(),
  );
}

/** The server's classes: this tree's, or another tree's (`--tree`) for an A/B of the server alone. */
interface ServerModules {
  CoapServer: typeof CoapServer;
  CoapEndpoint: typeof CoapEndpoint;
  OscoreServerSecurity: typeof OscoreServerSecurity;
}

let serverModules: ServerModules = { CoapServer, CoapEndpoint, OscoreServerSecurity };

async function importTree(dir: string): Promise<ServerModules> {
  const load = (path: string): Promise<Record<string, unknown>> => import(pathToFileURL(resolvePath(dir, 'dist/src', path)).href) as Promise<Record<string, unknown>>;
  const [server, endpoint, oscore] = await Promise.all([load('server/server.js'), load('exchange/endpoint.js'), load('server/oscore.js')]);
  return { CoapServer: server.CoapServer as typeof CoapServer, CoapEndpoint: endpoint.CoapEndpoint as typeof CoapEndpoint, OscoreServerSecurity: oscore.OscoreServerSecurity as typeof OscoreServerSecurity };
}

function makeServer(variant: Variant): { server: CoapServer; transport: QueueTransport } {
  const transport = new QueueTransport();
  const { CoapServer, CoapEndpoint, OscoreServerSecurity } = serverModules;
  const endpoint = new CoapEndpoint({ transport, parameters: { nstart: 1024 } });
  const layered = variant === 'layered' || variant === 'oscore-layered' ? { fastPath: false } : {};
  const server = new CoapServer(endpoint, isOscore(variant) ? { security: new OscoreServerSecurity([serverContext()]), ...layered } : layered);
  // The demo's /hello (src/demo/resources.ts): a constant text.
  server.resource('/hello', { GET: () => ({ code: ResponseCode.Content, contentFormat: ContentFormat.TextPlain, payload: 'Hello from coapsec' }) });
  return { server, transport };
}

const cpuMicros = (since: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(since);
  return u.user + u.system;
};

const macrotask = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface PairResult {
  variant: Variant;
  inFlight: number;
  requests: number;
  clientMicros: number;
  serverMicros: number;
}

/**
 * `requests` GETs of /hello from `client` with `inFlight` outstanding, its datagrams queued instead
 * of sent; from a macrotask, `exchange` gets each batch and delivers the answers to the client's
 * messaging layer. Returns the process's CPU and wall time over the loop.
 */
async function closedLoop(client: CoapClient, inFlight: number, requests: number, exchange: (batch: Uint8Array[], messaging: MessageLayer) => void): Promise<{ cpuMicros: number; wallMs: number }> {
  const endpoint = await client.endpoint(4);
  const toServer: Uint8Array[] = [];
  // The client's datagrams go to the queue instead of its socket.
  (endpoint.transport as { send(data: Uint8Array, peer: PeerAddress): void }).send = (data) => {
    toServer.push(data);
  };
  const uri = `coap://${SERVER_ADDRESS.address}:${SERVER_ADDRESS.port}/hello`;
  let started = 0;
  let finished = 0;
  let failed = 0;
  let done: () => void = () => {};
  const allDone = new Promise<void>((resolve) => (done = resolve));
  const settled = (ok: boolean): void => {
    if (!ok) failed++;
    if (++finished === requests) done();
    else next();
  };
  const next = (): void => {
    if (started >= requests) return;
    started++;
    client.get(uri).then((r) => settled(r.code === ResponseCode.Content), () => settled(false));
  };
  let running = true;
  const pump = async (): Promise<void> => {
    while (running) {
      await macrotask();
      exchange(toServer.splice(0), endpoint.messaging);
    }
  };
  const cpu = process.cpuUsage();
  const wall = performance.now();
  const pumping = pump();
  for (let i = 0; i < inFlight; i++) next();
  await allDone;
  const result = { cpuMicros: cpuMicros(cpu), wallMs: performance.now() - wall };
  running = false;
  await pumping;
  await client.close();
  if (failed > 0) throw new Error(`${failed} of ${requests} requests failed`);
  return result;
}

/** Client and server in one process, `requests` GETs with `inFlight` outstanding. */
async function runPair(variant: Variant, inFlight: number, requests: number): Promise<PairResult> {
  const { server, transport } = makeServer(variant);
  const clientSecurity =
    isOscore(variant)
      ? new OscoreClientSecurity(
          new OscoreSecurityContext({ masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: CLIENT_ID, recipientIds: [SERVER_ID] }, new VolatileSequence()),
        )
      : undefined;
  const client = new CoapClient({ parameters: { nstart: 1024 }, ...(clientSecurity ? { security: () => clientSecurity } : {}) });
  let serverWall = 0;
  const { cpuMicros: total, wallMs } = await closedLoop(client, inFlight, requests, (batch, messaging) => {
    const before = performance.now();
    for (const datagram of batch) transport.handler(Buffer.from(datagram.buffer, datagram.byteOffset, datagram.byteLength), CLIENT_ADDRESS, undefined);
    serverWall += performance.now() - before;
    for (const datagram of transport.outbox.splice(0)) messaging.receive(datagram, SERVER_ADDRESS);
  });
  await server.close();
  const serverShare = serverWall / wallMs;
  return { variant, inFlight, requests, clientMicros: (total * (1 - serverShare)) / requests, serverMicros: (total * serverShare) / requests };
}

/** The server alone: prepared request datagrams in batches of `inFlight`, answers dropped. */
async function runServerOnly(variant: Variant, inFlight: number, requests: number): Promise<PairResult> {
  const { server, transport } = makeServer(variant);
  const template: CoapMessage = {
    type: MessageType.CON,
    code: Method.GET,
    messageId: 0,
    token: new Uint8Array(8),
    options: [{ number: OptionNumber.UriPath, value: Buffer.from('hello') }],
    payload: new Uint8Array(0),
  };
  let datagrams: Buffer[];
  if (isOscore(variant)) {
    const sender = new OscoreSecurityContext({ masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: CLIENT_ID, recipientIds: [SERVER_ID] }, new VolatileSequence());
    const params = sender.sender;
    datagrams = Array.from({ length: requests }, (_, i) => encodeMessage(protectRequest(template, params, i).message));
  } else {
    const one = encodeMessage(template);
    datagrams = Array.from({ length: requests }, () => Buffer.from(one));
  }
  for (let i = 0; i < requests; i++) {
    const d = datagrams[i]!;
    d.writeUInt16BE(i & 0xffff, 2);
    d.writeUInt32BE(i, 4);
  }
  const cpu = process.cpuUsage();
  for (let i = 0; i < requests; i += inFlight) {
    const end = Math.min(requests, i + inFlight);
    for (let j = i; j < end; j++) transport.handler(datagrams[j]!, CLIENT_ADDRESS, undefined);
    transport.outbox.length = 0;
    await macrotask();
  }
  const total = cpuMicros(cpu);
  await server.close();
  return { variant, inFlight, requests, clientMicros: NaN, serverMicros: total / requests };
}

/**
 * The client alone: its requests answered by canned piggybacked 2.05s with their Message ID and
 * token copied in (a few byte copies per request, the same in every tree compared). OSCORE: the
 * answers are protected beforehand (answersFor), one per Sender Sequence Number, and the client's
 * context starts at 0 and sends in order, so the n-th request gets the answer bound to it.
 */
async function runClientOnly(variant: Variant, inFlight: number, requests: number): Promise<PairResult> {
  const answers = isOscore(variant) ? oscoreAnswers(requests) : [PLAIN_ANSWER];
  const security = isOscore(variant) ? new OscoreClientSecurity(new OscoreSecurityContext(clientContextInput(), new VolatileSequence())) : undefined;
  const client = new CoapClient({ parameters: { nstart: 1024 }, ...(security ? { security: () => security } : {}) });
  let answered = 0;
  const { cpuMicros: total } = await closedLoop(client, inFlight, requests, (batch, messaging) => {
    for (const request of batch) {
      const reply = Buffer.from(answers[answers.length === 1 ? 0 : answered++]!);
      reply[2] = request[2]!;
      reply[3] = request[3]!;
      for (let i = 0; i < 8; i++) reply[4 + i] = request[4 + i]!;
      messaging.receive(reply, SERVER_ADDRESS);
    }
  });
  return { variant, inFlight, requests, clientMicros: total / requests, serverMicros: NaN };
}

/** The demo's answer to GET /hello, with an 8-byte token to patch. */
const HELLO_ANSWER: CoapMessage = {
  type: MessageType.ACK,
  code: ResponseCode.Content,
  messageId: 0,
  token: new Uint8Array(8),
  options: [{ number: OptionNumber.ContentFormat, value: new Uint8Array(0) }],
  payload: Buffer.from('Hello from coapsec'),
};
const PLAIN_ANSWER = encodeMessage(HELLO_ANSWER);

const clientContextInput = (): ConstructorParameters<typeof OscoreSecurityContext>[0] => ({
  masterSecret: OSCORE_MASTER_SECRET,
  masterSalt: OSCORE_MASTER_SALT,
  senderId: CLIENT_ID,
  recipientIds: [SERVER_ID],
});

/** The server's protected answers to the client's requests with Partial IVs 0..count-1 (made once per count, outside the measurement). */
const oscoreAnswerSets = new Map<number, Uint8Array[]>();
function oscoreAnswers(count: number): Uint8Array[] {
  let answers = oscoreAnswerSets.get(count);
  if (answers) return answers;
  const client = new OscoreSecurityContext(clientContextInput(), new VolatileSequence());
  const server = serverContext();
  const request: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: 0, token: new Uint8Array(8), options: [{ number: OptionNumber.UriPath, value: Buffer.from('hello') }], payload: new Uint8Array(0) };
  answers = [];
  for (let sequenceNumber = 0; sequenceNumber < count; sequenceNumber++) {
    const opened = unprotectRequest(protectRequest(request, client.sender, sequenceNumber).message, () => server.primaryRecipient.params);
    if (!opened.ok) throw new Error(`cannot open the request with Partial IV ${sequenceNumber}: ${opened.reason}`);
    answers.push(encodeMessage(protectResponse(HELLO_ANSWER, server.sender, opened.binding)));
  }
  oscoreAnswerSets.set(count, answers);
  return answers;
}
/**
 * The AEAD floor (bench/aead-floor.ts) in this process: per request, what OSCORE's AEAD alone costs
 * each side (the server opens a request and seals a response, the client the other way round),
 * for `floor + our JS` beside the OSCORE figures above.
 */
function aeadFloor(requests: number): { server: number; client: number } {
  const perSide = (side: 'server' | 'client'): number => {
    const floor = new OscoreAeadFloor(side);
    const cpu = process.cpuUsage();
    for (let i = 0; i < requests; i++) {
      floor.open();
      floor.seal();
    }
    return cpuMicros(cpu) / requests;
  };
  perSide('server');
  perSide('client');
  return { server: perSide('server'), client: perSide('client') };
}

interface Settings {
  requests: number;
  warmup: number;
  inFlight: number[];
  variants: Variant[];
  rounds: number;
  serverOnly: boolean;
  clientOnly: boolean;
  aeadFloor: boolean;
  /** Other trees to compare the server alone with (`--tree LABEL=DIR`). */
  trees: Array<{ label: string; dir: string }>;
  /** Child of an A/B run: the tree whose server this process measures, and one JSON line out. */
  load: string | undefined;
}

function parseArgs(argv: string[]): Settings {
  const settings: Settings = { requests: 100_000, warmup: 20_000, inFlight: [32, 256], variants: ['plain', 'oscore'], rounds: 3, serverOnly: false, clientOnly: false, aeadFloor: false, trees: [], load: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--requests') settings.requests = Number(value());
    else if (a === '--in-flight') settings.inFlight = value().split(',').map(Number);
    else if (a === '--variants') settings.variants = value().split(',') as Variant[];
    else if (a === '--rounds') settings.rounds = Number(value());
    else if (a === '--server-only') settings.serverOnly = true;
    else if (a === '--client-only') settings.clientOnly = true;
    else if (a === '--aead-floor') settings.aeadFloor = true;
    else if (a === '--warmup') settings.warmup = Number(value());
    else if (a === '--tree') settings.trees.push(labelledDir(value(), a));
    else if (a === '--load') settings.load = value();
    else throw new Error(`unknown argument ${a}`);
  }
  if (settings.trees.length > 0 && !settings.serverOnly) throw new Error('--tree compares the server alone: give --server-only too');
  return settings;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The A/B of the server alone: per round, per variant and in-flight count, one child per tree
 * (this one first in round 1, rotating after), each warming up and measuring one round.
 */
function compareTrees(s: Settings): void {
  const script = fileURLToPath(import.meta.url);
  const trees = [{ label: 'this', dir: resolvePath(fileURLToPath(new URL('../..', import.meta.url))) }, ...s.trees];
  for (const variant of s.variants) {
    for (const inFlight of s.inFlight) {
      const perTree = new Map<string, number[]>(trees.map((t) => [t.label, []]));
      for (let r = 0; r < s.rounds; r++) {
        for (let k = 0; k < trees.length; k++) {
          const tree = trees[(r + k) % trees.length]!;
          const args = [...process.execArgv, script, '--server-only', '--variants', variant, '--in-flight', String(inFlight), '--rounds', '1', '--requests', String(s.requests), '--warmup', String(s.warmup), '--load', tree.dir];
          const out = execFileSync(process.execPath, args, { encoding: 'utf8' });
          perTree.get(tree.label)!.push((JSON.parse(out.trim().split('\n').pop()!) as { serverMicros: number }).serverMicros);
        }
      }
      const mine = perTree.get('this')!;
      const lines = trees.map((t) => {
        const xs = perTree.get(t.label)!;
        const ratios = xs.map((x, i) => x / mine[i]!);
        return `  ${t.label.padEnd(10)} ${median(xs).toFixed(2)} µs (rounds: ${xs.map((x) => x.toFixed(2)).join(' ')})${t.label === 'this' ? '' : `, ÷ this ${median(ratios).toFixed(3)}× (rounds: ${ratios.map((x) => x.toFixed(3)).join(' ')})`}`;
      });
      console.log(`${variant} ${inFlight} in flight, server alone, CPU per request:\n${lines.join('\n')}`);
    }
  }
}

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  if (s.trees.length > 0) {
    compareTrees(s);
    return;
  }
  if (s.load !== undefined) serverModules = await importTree(s.load);
  if (s.aeadFloor) {
    const rounds = Array.from({ length: s.rounds }, () => aeadFloor(s.requests));
    const server = median(rounds.map((r) => r.server));
    const client = median(rounds.map((r) => r.client));
    console.log(`aead floor: server ${server.toFixed(2)} µs, client ${client.toFixed(2)} µs per request (rounds: ${rounds.map((r) => `${r.server.toFixed(2)}/${r.client.toFixed(2)}`).join(' ')})`);
    return;
  }
  const run = s.serverOnly ? runServerOnly : s.clientOnly ? runClientOnly : runPair;
  // The variants' rounds alternate (plain, layered, plain, …), so a change of the machine's load
  // falls on all of them; a first run of each warms the JIT and is not counted.
  const results = new Map<string, PairResult[]>();
  for (const inFlight of s.inFlight) {
    for (const variant of s.variants) if (s.warmup > 0) await run(variant, inFlight, s.warmup);
    for (let r = 0; r < s.rounds; r++) {
      for (const variant of s.variants) {
        const key = `${variant} ${inFlight}`;
        results.set(key, [...(results.get(key) ?? []), await run(variant, inFlight, s.requests)]);
      }
    }
  }
  for (const variant of s.variants) {
    for (const inFlight of s.inFlight) {
      const rounds = results.get(`${variant} ${inFlight}`)!;
      const server = median(rounds.map((r) => r.serverMicros));
      const client = median(rounds.map((r) => r.clientMicros));
      if (s.load !== undefined) {
        console.log(JSON.stringify({ variant, inFlight, serverMicros: server }));
        continue;
      }
      const perRound = rounds.map((r) => (s.serverOnly ? r.serverMicros.toFixed(2) : s.clientOnly ? r.clientMicros.toFixed(2) : `${r.serverMicros.toFixed(2)}/${r.clientMicros.toFixed(2)}`)).join(' ');
      const figures = s.serverOnly ? `server ${server.toFixed(2)} µs` : s.clientOnly ? `client ${client.toFixed(2)} µs` : `server ${server.toFixed(2)} µs, client ${client.toFixed(2)} µs, client/server ${(client / server).toFixed(2)}×`;
      console.log(`${variant.padEnd(7)} ${String(inFlight).padStart(4)} in flight: ${figures} per request (rounds: ${perRound})`);
    }
  }
}

await main();
