/**
 * Issue 17 item 9: requests through a lossy, duplicating, reordering relay. Whatever the path does,
 * a request the server executed reaches the client as its own response or as a timeout — never as
 * OSCORE's "Replay detected" — and no request is executed twice (RFC 7252 §4.5 deduplication before
 * the RFC 8613 §7.4 replay check).
 *
 * What used to fail (OSCORE, 1–3 requests in 300): no copy got past deduplication. A request whose
 * transmissions were all lost but the last kept its Partial IV while the 7 other slots carried more
 * than 32 later requests through; when a copy finally arrived, its Partial IV was below the
 * server's 32-wide replay window and the server answered "Replay detected" for a request it had
 * never seen. Now a Partial IV below the window gets a protected 4.01 with Echo (RFC 9175 §2.3),
 * and the client repeats the request with a fresh Partial IV (server/oscore.ts).
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { PLAIN, securedSender, withEchoRetry, type MessageSecurity } from '../src/client/security.js';
import { OscoreSecurityContext, VolatileSequence, type SecurityContextInput } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import type { PeerAddress } from '../src/transport/transport.js';
import { SeededRandom } from '../src/util/random.js';
import { FakeNetwork } from './support/network.js';

const SERVER: PeerAddress = { address: '10.0.0.1', port: 5683 };
const RELAY: PeerAddress = { address: '10.0.0.9', port: 5683 };
const CLIENT: PeerAddress = { address: '10.0.0.2', port: 40000 };
const hex = (s: string): Uint8Array => Buffer.from(s, 'hex');
const COMMON = { masterSecret: hex('0102030405060708090a0b0c0d0e0f10'), masterSalt: hex('9e7ca92223786340') };
const CLIENT_CONTEXT: SecurityContextInput = { ...COMMON, senderId: hex(''), recipientIds: [hex('01')], name: 'server' };
const SERVER_CONTEXT: SecurityContextInput = { ...COMMON, senderId: hex('01'), recipientIds: [hex('')], name: 'client' };

interface PathModel {
  /** Probability that a datagram is lost, per direction. */
  loss: number;
  /** Probability that a datagram that gets through is delivered twice. */
  duplication: number;
  /** Each copy is held up to this many milliseconds (uniform), so copies overtake each other. */
  maxDelayMs: number;
}

/**
 * A relay between client and server on the fake network: every datagram it receives is lost,
 * delivered, or delivered twice, each copy after its own random delay. Seeded, so a run repeats.
 */
function relay(net: FakeNetwork, model: PathModel, seed: number): void {
  const random = new SeededRandom(seed);
  const transport = net.transport(RELAY);
  transport.setHandler((data, from) => {
    const to = from.address === CLIENT.address ? SERVER : CLIENT;
    if (random.float() < model.loss) return;
    const copies = random.float() < model.duplication ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const bytes = Buffer.from(data);
      net.clock.schedule(random.float() * model.maxDelayMs, () => transport.send(bytes, to));
    }
  });
}

type Outcome = 'own response' | 'timeout' | 'replay error' | string;

interface Run {
  outcomes: Map<number, Outcome>;
  executions: Map<number, number>;
  /** Requests the server did not process but asked to repeat (RFC 9175 §2.3), OSCORE only. */
  challenges: number;
}

interface RunOptions {
  oscore: boolean;
  requests: number;
  inFlight: number;
  seed: number;
  model: PathModel;
  /** The handler answers after up to this many ms: past the server's 100 ms, an empty ACK and a separate response (§5.2.2). */
  handlerDelayMs?: number;
}

async function runThroughRelay(options: RunOptions): Promise<Run> {
  const net = new FakeNetwork();
  relay(net, options.model, options.seed);
  const executions = new Map<number, number>();
  const serverContexts = [new OscoreSecurityContext(SERVER_CONTEXT, new VolatileSequence())];
  const serverSecurity = new OscoreServerSecurity(serverContexts, { now: () => net.clock.now() });
  const server = new CoapServer(net.endpoint(SERVER, {}, options.seed + 1), options.oscore ? { security: serverSecurity } : {});
  const handlerDelay = new SeededRandom(options.seed + 3);
  server.resource('/actuate', {
    POST: (request) => {
      const id = Number(decodeString(request.payload));
      executions.set(id, (executions.get(id) ?? 0) + 1);
      const response = { code: ResponseCode.Changed, payload: `done ${id}` };
      if (!options.handlerDelayMs) return response;
      return new Promise((resolve) => net.clock.schedule(handlerDelay.float() * options.handlerDelayMs!, () => resolve(response)));
    },
  });
  const client = net.endpoint(CLIENT, { ackTimeout: 200, nstart: options.inFlight }, options.seed + 2);
  const security: MessageSecurity = options.oscore ? new OscoreClientSecurity(new OscoreSecurityContext(CLIENT_CONTEXT, new VolatileSequence())) : PLAIN;
  const send = withEchoRetry(securedSender(client, RELAY, security));
  const outcomes = new Map<number, Outcome>();

  const one = async (id: number): Promise<void> => {
    const post: CoapMessage = {
      type: MessageType.CON,
      code: Method.POST,
      messageId: 0,
      token: EMPTY_BYTES,
      options: [{ number: OptionNumber.UriPath, value: encodeString('actuate') }],
      payload: encodeString(String(id)),
    };
    try {
      const response = await send(post);
      const payload = decodeString(response.message.payload);
      outcomes.set(id, response.message.code === ResponseCode.Changed && payload === `done ${id}` ? 'own response' : `${response.message.code} ${payload}`);
    } catch (error) {
      const message = (error as Error).message;
      outcomes.set(id, /Replay detected/.test(message) ? 'replay error' : /no acknowledgement|no response/.test(message) ? 'timeout' : message);
    }
  };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < options.requests) await one(next++);
  };
  await runUntilSettled(net, Promise.all(Array.from({ length: options.inFlight }, worker)), 30 * 60_000);
  await server.close();
  await client.close();
  // Protected 4.01 Echo challenges are the only server messages carrying a Partial IV here.
  const challenges = net.log.filter((d) => d.from.address === SERVER.address && ((getOption(d.message, OptionNumber.Oscore)?.[0] ?? 0) & 0x07) > 0).length;
  return { outcomes, executions, challenges };
}

/**
 * Drives the fake clock from timer to timer (every event here is a timer: deliveries, delays,
 * retransmissions), draining promise callbacks between them — FakeNetwork.until's 1 ms steps
 * would spend most of the run on idle milliseconds.
 */
async function runUntilSettled(net: FakeNetwork, promise: Promise<unknown>, limitMs: number): Promise<void> {
  let settled = false;
  const done = promise.finally(() => (settled = true));
  const end = net.clock.now() + limitMs;
  for (;;) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (settled) break;
    const due = net.clock.nextDue();
    if (due === undefined || due > end) throw new Error(`not settled within ${limitMs} ms of fake time`);
    net.clock.advance(Math.max(0, due - net.clock.now()));
  }
  await done;
}

function assertSound(run: Run, requests: number): void {
  const twice = [...run.executions].filter(([, n]) => n > 1).map(([id]) => id);
  assert.deepEqual(twice, [], 'no request is executed twice');
  const wrong: string[] = [];
  for (let id = 0; id < requests; id++) {
    const outcome = run.outcomes.get(id);
    if (outcome === 'own response') continue;
    if (outcome === 'timeout') continue;
    wrong.push(`#${id} (executed ${run.executions.get(id) ?? 0}×): ${outcome}`);
  }
  assert.deepEqual(wrong, [], 'every request is answered with its own response or times out');
}

const LOSSY: PathModel = { loss: 0.3, duplication: 0.1, maxDelayMs: 20 };

for (const oscore of [false, true]) {
  test(`${oscore ? 'OSCORE' : 'plain CoAP'} through 30 % loss, 10 % duplication, 0–20 ms reordering, 8 in flight`, async () => {
    let challenges = 0;
    for (const seed of [1, 2, 3, 4]) {
      const run = await runThroughRelay({ oscore, requests: 300, inFlight: 8, seed, model: LOSSY });
      assertSound(run, 300);
      challenges += run.challenges;
    }
    // With these seeds, requests retransmitted while 32 later ones went through do occur: the
    // path that used to answer them "Replay detected" is exercised, not skipped.
    if (oscore) assert.ok(challenges > 0, 'some requests fell below the replay window');
  });
}

test('OSCORE through the same path with slow handlers: empty ACKs, separate responses and their retransmissions', async () => {
  for (const seed of [5, 6]) {
    const run = await runThroughRelay({ oscore: true, requests: 200, inFlight: 8, seed, model: LOSSY, handlerDelayMs: 300 });
    assertSound(run, 200);
  }
});

/**
 * The same over loopback sockets, through a UDP relay with the same seeded path model (the delays
 * are real timers, so the interleaving is not repeatable; the properties hold for any). Fewer
 * requests: a stuck request costs up to MAX_TRANSMIT_WAIT (9.3 s at ackTimeout 200 ms) of real time.
 */
test('OSCORE over loopback UDP through a lossy, duplicating relay: no replay errors, nothing executed twice', async () => {
  const requests = 100;
  const executions = new Map<number, number>();
  const serverContexts = [new OscoreSecurityContext(SERVER_CONTEXT, new VolatileSequence())];
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new OscoreServerSecurity(serverContexts) });
  server.resource('/actuate', {
    POST: (request) => {
      const id = Number(decodeString(request.payload));
      executions.set(id, (executions.get(id) ?? 0) + 1);
      return { code: ResponseCode.Changed, payload: `done ${id}` };
    },
  });
  const random = new SeededRandom(9);
  const bound = async (): Promise<Socket> => {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return socket;
  };
  const towardsClient = await bound();
  const towardsServer = await bound();
  const timers = new Set<NodeJS.Timeout>();
  const pass = (socket: Socket, data: Buffer, port: number): void => {
    if (random.float() < LOSSY.loss) return;
    const copies = random.float() < LOSSY.duplication ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        socket.send(data, port, '127.0.0.1');
      }, random.float() * LOSSY.maxDelayMs);
      timers.add(timer);
    }
  };
  let clientPort = 0;
  towardsClient.on('message', (data, from) => {
    clientPort = from.port;
    pass(towardsServer, data, server.address().port);
  });
  towardsServer.on('message', (data) => pass(towardsClient, data, clientPort));
  const security = new OscoreClientSecurity(new OscoreSecurityContext(CLIENT_CONTEXT, new VolatileSequence()));
  const client = new CoapClient({ bindIpv4: '127.0.0.1', parameters: { ackTimeout: 200, nstart: 8 }, security: () => security });
  const uri = `coap://127.0.0.1:${towardsClient.address().port}/actuate`;
  const outcomes = new Map<number, Outcome>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < requests) {
      const id = next++;
      try {
        const response = await client.post(uri, String(id));
        outcomes.set(id, response.text() === `done ${id}` ? 'own response' : `${response.status} ${response.text()}`);
      } catch (error) {
        const message = (error as Error).message;
        outcomes.set(id, /Replay detected/.test(message) ? 'replay error' : /no acknowledgement|no response/.test(message) ? 'timeout' : message);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: 8 }, worker));
  } finally {
    for (const timer of timers) clearTimeout(timer);
    await client.close();
    await server.close();
    towardsClient.close();
    towardsServer.close();
  }
  // Real timers: a rare request may end otherwise than answered or timed out (its repetition after
  // a challenge falling below the window too), so only the properties are asserted here.
  const twice = [...executions].filter(([, n]) => n > 1).map(([id]) => id);
  assert.deepEqual(twice, [], 'no request is executed twice');
  const wrong = [...outcomes].filter(([id, outcome]) => outcome === 'replay error' || (executions.has(id) && outcome !== 'own response' && outcome !== 'timeout'));
  assert.deepEqual(wrong, [], 'no replay errors; an executed request is answered with its own response or times out');
  assert.equal(outcomes.size, requests);
});
