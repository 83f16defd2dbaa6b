/**
 * The driver both client fast-path property tests share (client-fast-path, client-oscore-fast-path):
 * a client whose datagrams are captured and whose "server" is scripted, taken through a sequence of
 * requests, answers and clock advances; the transcript is every datagram sent and every outcome,
 * to compare a client with its fast path on against one with it off.
 */
import type { CoapClient } from '../../src/client/client.js';
import type { CoapMessage } from '../../src/coap/message.js';
import type { FakeScheduler } from '../../src/util/scheduler.js';

export interface TranscriptHarness {
  client: CoapClient;
  clock: FakeScheduler;
  /** Every datagram the client sent, as "time hex". */
  sent: string[];
  /** The requests (CON or NON with a request code) the client sent, in order. */
  requests: CoapMessage[];
  deliver(bytes: Uint8Array): void;
}

export type TranscriptStep<Request, Answer> = { request: Request } | { answer: Answer | 'duplicate' | 'lost'; pick: number } | { advance: number };

export interface Transcript {
  sent: string[];
  outcomes: string[];
  /** Requests the client's fast path took. */
  fast: number;
}

export interface TranscriptScript<Request, Answer> {
  /** Paths requested once first, answered piggybacked: their routes are made (the layered path on both clients). */
  readonly routes: readonly string[];
  readonly uriOf: (path: string) => string;
  readonly start: (request: Request) => Promise<unknown>;
  /** The scripted server's datagram for `answer` to `request` ('piggybacked' routes). */
  readonly answer: (answer: Answer | 'piggybacked', request: CoapMessage) => Buffer;
  readonly describe: (index: number, result: PromiseSettledResult<unknown>) => string;
}

export const flush = async (): Promise<void> => {
  for (let i = 0; i < 8; i++) await Promise.resolve();
};

export async function runTranscript<Request, Answer>(h: TranscriptHarness, script: TranscriptScript<Request, Answer>, steps: ReadonlyArray<TranscriptStep<Request, Answer>>): Promise<Transcript> {
  const outcomes: string[] = [];
  let started = 0;
  const track = (promise: Promise<unknown>): void => {
    const index = started++;
    promise.then(
      (value) => outcomes.push(script.describe(index, { status: 'fulfilled', value })),
      (reason: unknown) => outcomes.push(script.describe(index, { status: 'rejected', reason })),
    );
  };
  for (const path of script.routes) {
    const first = h.client.get(script.uriOf(path));
    for (let i = 0; i < 100 && h.requests.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
    h.deliver(script.answer('piggybacked', h.requests.shift()!));
    await first;
  }
  h.sent.length = 0;
  let last: Buffer | undefined;
  for (const step of steps) {
    if ('request' in step) track(script.start(step.request));
    else if ('advance' in step) h.clock.advance(step.advance);
    else if (h.requests.length > 0 && step.answer !== 'lost') {
      if (step.answer === 'duplicate') {
        if (last !== undefined) h.deliver(last);
      } else {
        last = script.answer(step.answer, h.requests[step.pick % h.requests.length]!);
        h.deliver(last);
      }
    }
    await flush();
  }
  // Every retransmission and timeout (EXCHANGE_LIFETIME is 247 s), then what close() fails.
  for (let i = 0; i < 10; i++) {
    h.clock.advance(30_000);
    await flush();
  }
  const fast = h.client.fastPathRequests;
  await h.client.close();
  await flush();
  return { sent: h.sent, outcomes, fast };
}
