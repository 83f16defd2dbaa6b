/**
 * Pub-sub benchmark (issue 23), one run:
 *   1. publications/s from 1 publisher to 100 subscribers through the broker, plain vs protected
 *      (draft-ietf-ace-coap-pubsub-profile publications: each one sealed and countersigned by the
 *      publisher, verified and opened by every subscriber);
 *   2. fan-out latency to 1,000 subscribers: from the PUT leaving the publisher to the last
 *      subscriber holding the publication (verified, when protected).
 *
 * Everything is in this process on loopback UDP: the broker (a CoapServer with PubSubBroker, its
 * rate limit lifted), the publisher, and the subscribers, each a CoapClient on a socket of its own.
 * So the figures include the subscribers' work, done on the same thread as the broker's: with
 * protection, 100 signature verifications per publication. The publisher sends one publication at
 * a time (the next once the broker answered the PUT); a publication counts once every subscriber
 * has it. Notifications are NON (§3.2.3), so one can be lost; the run reports how many were.
 *
 *   node dist/bench/pubsub.js [--quick] [--rounds N] [--duration MS] [--subscribers N] [--fanout N]
 */
import { PubSubBroker } from '../src/broker/broker.js';
import { decodeTopicProperties, encodeTopicProperties, PUBSUB_CONTENT_FORMAT } from '../src/broker/topic-properties.js';
import { CoapClient } from '../src/client/client.js';
import type { Observation } from '../src/client/observe.js';
import { ResponseCode } from '../src/coap/codes.js';
import { addMember, createTopicGroup, issueKeyMaterial } from '../src/pubsub-protection/key-distribution.js';
import { protectPublication, PublicationVerifier, type Publisher, type TopicBinding } from '../src/pubsub-protection/publication.js';
import { CoapServer } from '../src/server/server.js';
import { median } from './common.js';
import { environment, fmt, parseCommonArgs, runMain, table } from './harness.js';

const USAGE = 'usage: node dist/bench/pubsub.js [--quick] [--rounds N] [--duration MS] [--subscribers N] [--fanout N]';
const MODES = ['plain', 'protected'] as const;
type Mode = (typeof MODES)[number];
/** The longest one publication may take to reach every subscriber before the run gives up on it. */
const DELIVERY_TIMEOUT_MS = 5000;

interface Subscriber {
  client: CoapClient;
  observation: Observation;
  /** Sequence numbers (the publication's index) received so far, the latest last. */
  latest: number;
  received: number;
}

interface Setup {
  publish(index: number): Promise<void>;
  /** Resolves once every subscriber holds publication `index` (false on timeout). */
  delivered(index: number): Promise<boolean>;
  subscribers: Subscriber[];
  close(): Promise<void>;
}

const payloadOf = (index: number): Uint8Array => new TextEncoder().encode(`reading ${index} ${'x'.repeat(32)}`);
const indexOf = (plaintext: Uint8Array): number => Number(/^reading (\d+)/.exec(Buffer.from(plaintext).toString())?.[1] ?? -1);

async function setUp(mode: Mode, count: number): Promise<Setup> {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0, observe: { maxObservers: count + 16 } });
  new PubSubBroker(server, { limits: { publicationsPerSecond: 1e9, publicationBurst: 1e9, maxSubscribersPerTopic: count + 16 } });
  const base = `coap://127.0.0.1:${server.address().port}`;
  const publishing = new CoapClient();
  const created = await publishing.post(`${base}/ps`, encodeTopicProperties({ topicName: 'bench', resourceType: 'core.ps.data', topicContentFormat: 0 }), { contentFormat: PUBSUB_CONTENT_FORMAT });
  if (created.code !== ResponseCode.Created) throw new Error(`creating the topic: ${created.code}`);
  const path = decodeTopicProperties(created.payload).topicData!;
  const binding: TopicBinding = { topicDataPath: path, contentFormat: 0 };

  const group = createTopicGroup('bench');
  addMember(group, 'publisher', 'publisher');
  addMember(group, 'subscriber', 'subscriber');
  const material = issueKeyMaterial(group, 'publisher');
  const publisher: Publisher = { groupKey: material.groupKey, senderId: material.senderId!, signingKey: material.signingKey!, signAlg: material.signAlg };
  const subscriberMaterial = issueKeyMaterial(group, 'subscriber');
  let sequence = 0;
  const body = (index: number): Uint8Array => (mode === 'plain' ? payloadOf(index) : protectPublication(publisher, sequence++, payloadOf(index), binding));

  const waiters = new Map<number, { left: number; resolve: (ok: boolean) => void }>();
  const arrived = (index: number): void => {
    const w = waiters.get(index);
    if (w && --w.left === 0) {
      waiters.delete(index);
      w.resolve(true);
    }
  };
  const publish = async (index: number): Promise<void> => {
    const r = await publishing.put(`${base}${path}`, body(index), { contentFormat: 0 });
    if (!r.ok) throw new Error(`publishing ${index}: ${r.code}`);
  };
  await publish(0);

  const subscribers: Subscriber[] = [];
  for (let i = 0; i < count; i++) {
    const client = new CoapClient();
    const observation = await client.observe(`${base}${path}`);
    const verifier = mode === 'protected' ? new PublicationVerifier(subscriberMaterial) : undefined;
    const s: Subscriber = { client, observation, latest: -1, received: 0 };
    subscribers.push(s);
    void (async () => {
      for await (const n of observation) {
        let plaintext: Uint8Array = n.payload;
        if (verifier) {
          const verdict = verifier.verify(n.payload, { topicDataPath: path, contentFormat: n.contentFormat });
          if (!verdict.ok) throw new Error(`subscriber ${i} refused a publication: ${verdict.detail}`);
          plaintext = verdict.plaintext;
        }
        s.latest = indexOf(plaintext);
        s.received++;
        arrived(s.latest);
      }
    })();
  }
  const delivered = (index: number): Promise<boolean> => {
    const left = subscribers.filter((s) => s.latest < index).length;
    if (left === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        waiters.delete(index);
        resolve(false);
      }, DELIVERY_TIMEOUT_MS);
      waiters.set(index, { left, resolve: (ok) => (clearTimeout(timer), resolve(ok)) });
    });
  };
  await delivered(0);
  return {
    publish,
    delivered,
    subscribers,
    close: async () => {
      await Promise.all(subscribers.map(async (s) => {
        await s.observation.cancel();
        await s.client.close();
      }));
      await publishing.close();
      await server.close();
    },
  };
}

/** Publications per second for `durationMs`, each published once the previous reached every subscriber. */
async function throughput(setup: Setup, durationMs: number, first: number): Promise<{ perSecond: number; published: number; lost: number; cpuMicrosPerPublication: number }> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  let index = first;
  let lost = 0;
  while (performance.now() - started < durationMs && index - first < 1_000_000) {
    await setup.publish(index);
    if (!(await setup.delivered(index))) lost++;
    index++;
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const published = index - first;
  return { perSecond: published / seconds, published, lost, cpuMicrosPerPublication: (used.user + used.system) / published };
}

/** Milliseconds from the PUT to the last subscriber holding the publication, `samples` times. */
async function fanOutLatency(setup: Setup, samples: number, first: number): Promise<{ ms: number[]; lost: number }> {
  const ms: number[] = [];
  let lost = 0;
  for (let k = 0; k < samples; k++) {
    const index = first + k;
    const started = performance.now();
    const publishing = setup.publish(index);
    const complete = await setup.delivered(index);
    await publishing;
    if (complete) ms.push(performance.now() - started);
    else lost++;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { ms, lost };
}

async function main(): Promise<void> {
  let subscribers = 100;
  let fanout = 1000;
  const settings = parseCommonArgs(process.argv.slice(2), { quick: false, rounds: 3, warmupMs: 200, durationMs: 3000, portBase: 0, socketBuffer: 0 }, { rounds: 1, durationMs: 1000 }, USAGE, (arg, value) => {
    const count = (): number => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1 || n > 5000) throw new Error(`${arg} must be an integer in 1..5000`);
      return n;
    };
    if (arg === '--subscribers') subscribers = count();
    else if (arg === '--fanout') fanout = count();
    else return false;
    return true;
  });
  const samples = settings.quick ? 5 : 10;
  console.log(`# Pub-sub through the broker (loopback UDP, one process), ${settings.rounds} rounds\n${environment()}\n`);
  const rows: string[][] = [['mode', `publications/s to ${subscribers} subscribers (median of rounds)`, 'CPU µs per publication (all parties)', 'publications not complete in 5 s', `fan-out ms to ${fanout}: median`, 'max']];
  for (const mode of MODES) {
    const rates: number[] = [];
    const cpu: number[] = [];
    let lost = 0;
    const small = await setUp(mode, subscribers);
    try {
      for (let round = 0; round < settings.rounds; round++) {
        const r = await throughput(small, settings.durationMs, 1 + round * 1_000_000);
        rates.push(r.perSecond);
        cpu.push(r.cpuMicrosPerPublication);
        lost += r.lost;
        console.log(`  ${mode}, ${subscribers} subscribers, round ${round + 1}: ${fmt(r.perSecond)} publications/s (${r.published} published, ${r.lost} incomplete)`);
      }
    } finally {
      await small.close();
    }
    const large = await setUp(mode, fanout);
    let latency: { ms: number[]; lost: number };
    try {
      latency = await fanOutLatency(large, samples * settings.rounds, 1);
      console.log(`  ${mode}, ${fanout} subscribers: fan-out ${latency.ms.map((m) => fmt(m, 1)).join(', ')} ms${latency.lost ? ` (${latency.lost} incomplete)` : ''}`);
    } finally {
      await large.close();
    }
    rows.push([mode, fmt(median(rates)), fmt(median(cpu)), String(lost + latency.lost), fmt(median(latency.ms), 1), fmt(Math.max(...latency.ms), 1)]);
  }
  console.log('\n' + table(rows));
}

runMain(main);
