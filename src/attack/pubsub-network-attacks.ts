/**
 * TEST TOOL. The publish-subscribe threats of draft-hartke-core-e2e-security-reqs-00 §3.5 played on
 * the network: a real PubSubBroker on a UDP socket, a publisher and a subscriber (CoapClient) that
 * reach it through an AttackRelay (relay.ts), and the relay acting for the adversarial broker on the
 * notifications it serves — modify, move to another topic (the broker's own stored copy of it),
 * change the Content-Format, replay, re-order, forge with a colluding subscriber's key file, drop,
 * delay — and recording everything it forwards (eavesdrop). The same runs without protection are
 * the baseline. The in-process model of the same rows is pubsub-attacks.ts; the verdicts are judged
 * by the same rule (judgeSubscriber).
 */
import { PubSubBroker } from '../broker/broker.js';
import { decodeTopicProperties, encodeTopicProperties, PUBSUB_CONTENT_FORMAT } from '../broker/topic-properties.js';
import type { Topic } from '../broker/topic-store.js';
import { CoapClient } from '../client/client.js';
import { encodeMessage } from '../coap/codec.js';
import { ResponseCode } from '../coap/codes.js';
import { encodeUint, setOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { addMember, createTopicGroup, issueKeyMaterial } from '../pubsub-protection/key-distribution.js';
import { protectPublication, PublicationVerifier, type Publisher, type TopicBinding } from '../pubsub-protection/publication.js';
import { CoapServer } from '../server/server.js';
import type { Attack, Datagram, Emission } from './attacks.js';
import { forgePublication, GARAGE_PLAINTEXT, judgeSubscriber, PLAINTEXTS, PUBSUB_PROTECTIONS, PUBSUB_THREAT_ROWS, type AcceptedPublication, type PubSubProtection, type PubSubThreatRow } from './pubsub-attacks.js';
import { AttackRelay } from './relay.js';
import type { Outcome } from './report.js';

/** How long the delay row holds each notification back. */
const DELAY_MS = 400;
/** The longest a run waits for one notification to pass the relay (they take a few ms on loopback). */
const STEP_TIMEOUT_MS = 3000;
const CONTENT_FORMAT = 0;

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const withPayload = (m: CoapMessage, payload: Uint8Array): CoapMessage => ({ ...m, payload: Buffer.from(payload) });

/** What the adversarial broker needs besides the notification in hand: its store and a colluder's forgery. */
interface BrokerKnowledge {
  garage(): Topic;
  forged(): Uint8Array;
}

/**
 * The attack on the notifications the broker sends to its subscriber: the n-th 2.05 with a
 * payload is publication n (0 is the registration's response). It records every datagram it
 * forwards, both directions, as the broker would see them.
 */
class NotificationTamper implements Attack {
  readonly name: string;
  readonly description = 'the adversarial broker rewrites the notifications it serves';
  readonly capture: Buffer[] = [];
  #served = 0;
  #first: CoapMessage | undefined;
  #held: Datagram | undefined;
  #waiters: Array<{ count: number; resolve: () => void }> = [];

  constructor(
    private readonly row: PubSubThreatRow,
    private readonly knowledge: BrokerKnowledge,
  ) {
    this.name = `pubsub-${row.id}`;
  }

  /** Resolves once `count` publications have passed (or been dropped or held by) the relay. */
  served(count: number): Promise<void> {
    if (this.#served >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: publication ${count - 1} never reached the relay`)), STEP_TIMEOUT_MS);
      this.#waiters.push({ count, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  apply(d: Datagram): Emission[] | undefined {
    this.capture.push(Buffer.from(encodeMessage(d.message)));
    if (d.message.code !== ResponseCode.Content || d.message.payload.length === 0) return undefined;
    const index = this.#served++;
    for (const w of this.#waiters.filter((w) => this.#served >= w.count)) w.resolve();
    this.#waiters = this.#waiters.filter((w) => this.#served < w.count);
    const send = (message: CoapMessage, delayMs = 0): Emission => ({ from: d.from, to: d.to, message, delayMs });
    if (index === 0) this.#first = d.message;
    switch (this.row.id) {
      case 'modify-payload': {
        if (index !== 1) return undefined;
        const payload = Buffer.from(d.message.payload);
        payload[payload.length - 1]! ^= 0x08;
        return [send(withPayload(d.message, payload))];
      }
      case 'move-topic': {
        if (index !== 1) return undefined;
        const stored = this.knowledge.garage().publication!;
        const moved = withPayload(d.message, stored.payload);
        setOption(moved, OptionNumber.ContentFormat, encodeUint(stored.contentFormat ?? 0));
        return [send(moved)];
      }
      case 'change-content-format': {
        if (index !== 1) return undefined;
        const changed: CoapMessage = { ...d.message, options: [...d.message.options] };
        setOption(changed, OptionNumber.ContentFormat, encodeUint(50));
        return [send(changed)];
      }
      case 'replay':
        return index === 2 ? [send(withPayload(d.message, this.#first!.payload))] : undefined;
      case 'reorder':
        // Publication 1 is held until 2 arrives; then each goes out under the other's Observe number.
        if (index === 1) {
          this.#held = d;
          return [];
        }
        if (index === 2 && this.#held) return [send(withPayload(this.#held.message, d.message.payload)), send(withPayload(d.message, this.#held.message.payload))];
        return undefined;
      case 'collude-forge':
        return index === 1 ? [send(withPayload(d.message, this.knowledge.forged()))] : undefined;
      case 'drop':
        return index === 1 ? [] : undefined;
      case 'delay':
        return index >= 1 ? [send(d.message, DELAY_MS)] : undefined;
      case 'eavesdrop':
        return undefined;
      default:
        throw new Error(`unknown pub-sub threat row ${this.row.id}`);
    }
  }
}

async function createTopic(client: CoapClient, base: string, name: string): Promise<string> {
  const created = await client.post(`${base}/ps`, encodeTopicProperties({ topicName: name, resourceType: 'core.ps.data', topicContentFormat: CONTENT_FORMAT }), { contentFormat: PUBSUB_CONTENT_FORMAT });
  const path = created.code === ResponseCode.Created ? decodeTopicProperties(created.payload).topicData : undefined;
  if (path === undefined) throw new Error(`creating topic ${name}: ${created.code}`);
  return path;
}

/** One row under one protection, over loopback UDP: what the kitchen subscriber accepted, judged. */
export async function runPubSubNetworkThreat(row: PubSubThreatRow, protection: PubSubProtection): Promise<Outcome> {
  const group = createTopicGroup('home');
  addMember(group, 'sensor', 'publisher');
  addMember(group, 'display', 'subscriber');
  addMember(group, 'colluder', 'subscriber');
  const material = issueKeyMaterial(group, 'sensor');
  const publisher: Publisher = { groupKey: material.groupKey, senderId: material.senderId!, signingKey: material.signingKey!, signAlg: material.signAlg };
  let sequence = 0;
  const body = (plaintext: string, topicDataPath: string): Uint8Array =>
    protection === 'none' ? bytes(plaintext) : protectPublication(publisher, sequence++, bytes(plaintext), { topicDataPath, contentFormat: CONTENT_FORMAT });

  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  const broker = new PubSubBroker(server);
  let kitchenPath = '';
  let garagePath = '';
  const topicAt = (path: string): Topic => [...broker.store.topics()].find((t) => broker.dataPath(t) === path)!;
  const tamper = new NotificationTamper(row, {
    garage: () => topicAt(garagePath),
    forged: () => {
      const binding: TopicBinding = { topicDataPath: kitchenPath, contentFormat: CONTENT_FORMAT };
      return protection === 'none' ? bytes('t=99') : forgePublication(issueKeyMaterial(group, 'colluder'), publisher.senderId, 99, bytes('t=99'), binding);
    },
  });
  const relay = await AttackRelay.start({ listen: { address: '127.0.0.1', port: 0 }, upstream: server.address(), attack: tamper });
  const base = `coap://127.0.0.1:${relay.address.port}`;
  const publishing = new CoapClient();
  const subscribing = new CoapClient();
  const verifier = new PublicationVerifier(issueKeyMaterial(group, 'display'));
  const accepted: AcceptedPublication[] = [];
  const refusals: string[] = [];
  const publishedAt: number[] = [];
  const lateness: number[] = [];
  try {
    kitchenPath = await createTopic(publishing, base, 'kitchen');
    garagePath = await createTopic(publishing, base, 'garage');
    const publish = async (plaintext: string, path: string): Promise<void> => {
      const r = await publishing.put(`${base}${path}`, body(plaintext, path), { contentFormat: CONTENT_FORMAT });
      if (!r.ok) throw new Error(`publishing ${plaintext}: ${r.code}`);
    };
    await publish(PLAINTEXTS[0]!, kitchenPath);
    await publish(GARAGE_PLAINTEXT, garagePath);
    const observation = await subscribing.observe(`${base}${kitchenPath}`);
    const receiving = (async () => {
      for await (const n of observation) {
        const index = accepted.length;
        if (protection === 'none') accepted.push({ plaintext: n.payload.toString(), contentFormat: n.contentFormat });
        else {
          const verdict = verifier.verify(n.payload, { topicDataPath: kitchenPath, contentFormat: n.contentFormat });
          if (verdict.ok) accepted.push({ plaintext: Buffer.from(verdict.plaintext).toString(), contentFormat: n.contentFormat });
          else refusals.push(verdict.reason);
        }
        if (accepted.length > index && index > 0) lateness.push(performance.now() - (publishedAt[index] ?? performance.now()));
      }
    })();
    await tamper.served(1);
    for (const [i, plaintext] of PLAINTEXTS.entries()) {
      if (i === 0) continue;
      publishedAt[i] = performance.now();
      await publish(plaintext, kitchenPath);
      await tamper.served(i + 1);
    }
    // Let what the relay sends (and, for the delay row, holds back) reach the subscriber.
    await new Promise((resolve) => setTimeout(resolve, (row.id === 'delay' ? DELAY_MS : 0) + 200));
    await observation.cancel();
    await receiving;
  } finally {
    await subscribing.close();
    await publishing.close();
    relay.close();
    await server.close();
  }

  if (row.id === 'eavesdrop') {
    const held = Buffer.concat([...tamper.capture, ...[...broker.store.topics()].map((t) => Buffer.from(t.publication?.payload ?? []))]);
    const read = [...PLAINTEXTS, GARAGE_PLAINTEXT].filter((p) => held.includes(p));
    return read.length > 0
      ? { verdict: 'leaked', detail: `the broker's traffic and store hold ${read.map((r) => `"${r}"`).join(', ')}` }
      : { verdict: 'protected', detail: `${tamper.capture.length} datagrams and the store hold only ciphertext` };
  }
  const late = lateness.length > 0 ? `each at least ${Math.round(Math.min(...lateness))} ms after it was published` : 'late';
  return judgeSubscriber(row, accepted, refusals, late);
}

export const networkRunKey = (row: PubSubThreatRow, protection: PubSubProtection): string => `${row.id}|${protection}`;

/** Every row under both protections, one after the other (each opens and closes its own sockets). */
export async function runPubSubNetworkThreats(): Promise<Map<string, Outcome>> {
  const results = new Map<string, Outcome>();
  for (const row of PUBSUB_THREAT_ROWS) for (const p of PUBSUB_PROTECTIONS) results.set(networkRunKey(row, p), await runPubSubNetworkThreat(row, p));
  return results;
}

/** The network table for docs/threat-model.md. */
export function renderPubSubNetworkReport(results: ReadonlyMap<string, Outcome> | undefined): string {
  const lines = [
    '### The same threats over the network',
    '',
    `A real \`PubSubBroker\` on a UDP socket; the publisher and the subscriber are \`CoapClient\`s that reach it over loopback through the attack relay (\`src/attack/relay.ts\`, as \`coapsec attack-proxy\` runs it) playing the adversarial broker on the notifications it serves: it rewrites publication 1 (or 2 for the replay), takes the publication it moves from the broker's own store, forges with a colluding subscriber's key file, drops, holds back each publication ${DELAY_MS} ms, and records every datagram it forwards (\`src/attack/pubsub-network-attacks.ts\`, test: test/pubsub-network-threats.test.ts). Verdicts by the same rule as above.`,
    '',
    '| Threat | draft-hartke-core-e2e-security-reqs says | Requirements | no protection (broker on UDP) | protected publications (broker on UDP) |',
    '|---|---|---|---|---|',
  ];
  for (const row of PUBSUB_THREAT_ROWS) {
    const cells = PUBSUB_PROTECTIONS.map((p) => {
      const o = results?.get(networkRunKey(row, p));
      return o ? `${o.verdict}: ${o.detail.replace(/\|/g, '/')}` : 'not run';
    });
    lines.push(`| ${row.threat} | ${row.required ? 'REQUIRED' : 'NOT REQUIRED'} | ${row.requirements.join(', ') || '—'} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}
