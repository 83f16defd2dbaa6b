/**
 * TEST TOOL. The publish-subscribe threats of draft-hartke-core-e2e-security-reqs-00 §3.5 played by an
 * adversarial broker on the bytes it stores and serves, against a subscriber of one topic: without
 * protection (the baseline) and with protected publications (src/pubsub-protection/). The broker
 * holds what the real one holds — the publications and their Content-Format — and, for the
 * collusion row, a subscriber's key file (group key, no publisher's signing key).
 */
import { CoseSignAlg } from '../cose/sign.js';
import { addMember, createTopicGroup, issueKeyMaterial } from '../pubsub-protection/key-distribution.js';
import type { TopicKeyMaterial } from '../pubsub-protection/key-material.js';
import { protectPublication, PublicationVerifier, type TopicBinding } from '../pubsub-protection/publication.js';
import type { Outcome } from './report.js';
import { generatePrivateKey, CoseCurve } from '../cose/index.js';

export type PubSubProtection = 'none' | 'protected';
export const PUBSUB_PROTECTIONS: readonly PubSubProtection[] = ['none', 'protected'];

export interface PubSubThreatRow {
  readonly id: string;
  readonly threat: string;
  readonly required: boolean;
  readonly requirements: readonly string[];
}

export const PUBSUB_THREAT_ROWS: readonly PubSubThreatRow[] = [
  { id: 'modify-payload', threat: 'T1:5.1 / T1:5.4 broker modifies the stored publication', required: true, requirements: ['R5.1', 'R5.5'] },
  { id: 'move-topic', threat: 'T1:5.5 broker serves another topic\'s publication', required: true, requirements: ['R5.2'] },
  { id: 'change-content-format', threat: 'T1:5.2 broker changes the Content-Format', required: true, requirements: ['R5.3'] },
  { id: 'replay', threat: 'T1:5.5 / T2:5.1 broker replays an old publication', required: true, requirements: ['R5.4'] },
  { id: 'reorder', threat: 'T3:5.4 broker reorders publications', required: true, requirements: ['R5.4'] },
  { id: 'collude-forge', threat: 'T1:5.6 broker and a subscriber (holding the group key) forge a publication', required: true, requirements: ['R5.1', 'R5.6'] },
  { id: 'eavesdrop', threat: 'T4:5.1 broker reads the publications it stores', required: true, requirements: ['R5.5'] },
  { id: 'drop', threat: 'T3:5.1 broker drops a publication (NR5.4)', required: false, requirements: [] },
  { id: 'delay', threat: 'T3:5.3 broker delays publications (NR5.5)', required: false, requirements: [] },
];

const KITCHEN: TopicBinding = { topicDataPath: '/ps/data/kitchen', contentFormat: 0 };
const GARAGE: TopicBinding = { topicDataPath: '/ps/data/garage', contentFormat: 0 };

/** A publication as the broker stores and serves it. */
interface Stored {
  readonly body: Uint8Array;
  readonly contentFormat: number | undefined;
}

/**
 * A group key holder who is not a publisher encrypts validly under the group key, names a real
 * publisher's Sender ID, and signs with the only signing key it has: its own.
 */
export function forgePublication(colluder: TopicKeyMaterial, senderId: Uint8Array, sequenceNumber: number, plaintext: Uint8Array, binding: TopicBinding): Uint8Array {
  const signingKey = colluder.signAlg === CoseSignAlg.ES256 ? generatePrivateKey(CoseCurve.P256) : generatePrivateKey(CoseCurve.Ed25519);
  return protectPublication({ groupKey: colluder.groupKey, senderId, signingKey, signAlg: colluder.signAlg }, sequenceNumber, plaintext, binding);
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
/** What the publisher publishes to the kitchen topic, in order; the garage topic gets GARAGE_PLAINTEXT. */
export const PLAINTEXTS = ['t=0', 't=1', 't=2'];
export const GARAGE_PLAINTEXT = 'door=open';

/** Runs one row under one protection: what the kitchen subscriber accepted, judged against what was published. */
export function runPubSubThreat(row: PubSubThreatRow, protection: PubSubProtection): Outcome {
  const state = createTopicGroup('home');
  addMember(state, 'sensor', 'publisher');
  addMember(state, 'display', 'subscriber');
  addMember(state, 'colluder', 'subscriber');
  const publisherMaterial = issueKeyMaterial(state, 'sensor');
  const publisher = { groupKey: publisherMaterial.groupKey, senderId: publisherMaterial.senderId!, signingKey: publisherMaterial.signingKey!, signAlg: publisherMaterial.signAlg };
  let sequence = 0;
  const publish = (plaintext: string, binding: TopicBinding): Stored => ({
    body: protection === 'none' ? text(plaintext) : protectPublication(publisher, sequence++, text(plaintext), binding),
    contentFormat: binding.contentFormat,
  });
  const kitchen = PLAINTEXTS.map((p) => publish(p, KITCHEN));
  const garage = publish(GARAGE_PLAINTEXT, GARAGE);

  if (row.id === 'eavesdrop') {
    const stored = Buffer.concat([...kitchen, garage].map((s) => s.body));
    const read = [...PLAINTEXTS, GARAGE_PLAINTEXT].filter((p) => stored.includes(Buffer.from(p)));
    return read.length > 0 ? { verdict: 'leaked', detail: `the broker's store holds ${read.map((r) => `"${r}"`).join(', ')}` } : { verdict: 'protected', detail: 'the broker stores only ciphertext' };
  }

  let served: Stored[];
  switch (row.id) {
    case 'modify-payload': {
      const body = Uint8Array.from(kitchen[1]!.body);
      body[body.length - 1]! ^= 0x08;
      served = [kitchen[0]!, { ...kitchen[1]!, body }, kitchen[2]!];
      break;
    }
    case 'move-topic':
      served = [kitchen[0]!, garage, kitchen[2]!];
      break;
    case 'change-content-format':
      served = [kitchen[0]!, { ...kitchen[1]!, contentFormat: 50 }, kitchen[2]!];
      break;
    case 'replay':
      served = [kitchen[0]!, kitchen[1]!, kitchen[0]!];
      break;
    case 'reorder':
      served = [kitchen[0]!, kitchen[2]!, kitchen[1]!];
      break;
    case 'collude-forge': {
      const forged = protection === 'none' ? text('t=99') : forgePublication(issueKeyMaterial(state, 'colluder'), publisher.senderId, 99, text('t=99'), KITCHEN);
      served = [kitchen[0]!, { body: forged, contentFormat: 0 }, kitchen[2]!];
      break;
    }
    case 'drop':
      served = [kitchen[0]!, kitchen[2]!];
      break;
    case 'delay':
      // Held back and served late, in order: nothing in the objects says when they were made.
      served = [...kitchen];
      break;
    default:
      throw new Error(`unknown pub-sub threat row ${row.id}`);
  }

  const verifier = new PublicationVerifier(issueKeyMaterial(state, 'display'));
  const accepted: { plaintext: string; contentFormat: number | undefined }[] = [];
  const refusals: string[] = [];
  for (const s of served) {
    if (protection === 'none') {
      accepted.push({ plaintext: Buffer.from(s.body).toString(), contentFormat: s.contentFormat });
      continue;
    }
    const verdict = verifier.verify(s.body, { topicDataPath: KITCHEN.topicDataPath, contentFormat: s.contentFormat });
    if (verdict.ok) accepted.push({ plaintext: Buffer.from(verdict.plaintext).toString(), contentFormat: s.contentFormat });
    else refusals.push(verdict.reason);
  }
  return judgeSubscriber(row, accepted, refusals);
}

/** A publication the subscriber's application took: its plaintext and the Content-Format it came with. */
export interface AcceptedPublication {
  readonly plaintext: string;
  readonly contentFormat: number | undefined;
}

/**
 * The verdict from what the kitchen subscriber accepted and refused, when "t=0", "t=1", "t=2" were
 * published in Content-Format 0. Wrong: anything not published to this topic in this format, or
 * not newer than what came before. `lateness` says how late the delay row's publications came.
 */
export function judgeSubscriber(row: PubSubThreatRow, accepted: readonly AcceptedPublication[], refusals: readonly string[], lateness = 'late'): Outcome {
  const wrong = accepted.filter((a, i) => {
    const index = PLAINTEXTS.indexOf(a.plaintext);
    return index < 0 || a.contentFormat !== KITCHEN.contentFormat || accepted.slice(0, i).some((b) => PLAINTEXTS.indexOf(b.plaintext) >= index);
  });
  const shown = accepted.map((a) => `"${a.plaintext}"${a.contentFormat !== KITCHEN.contentFormat ? ` (cf ${a.contentFormat})` : ''}`).join(', ');
  if (wrong.length > 0) return { verdict: 'undetected', detail: `subscriber accepted ${shown}` };
  if (refusals.length > 0) return { verdict: 'detected', detail: `subscriber refused ${refusals.join(', ')}; accepted ${shown}` };
  if (row.id === 'drop') return { verdict: 'undetected', detail: `subscriber accepted ${shown}; the missing "t=1" is not reported (NR5.4)` };
  if (row.id === 'delay') return { verdict: 'undetected', detail: `subscriber accepted ${shown}, ${lateness}; lateness is not visible (NR5.5)` };
  return { verdict: 'ineffective', detail: `subscriber accepted ${shown}` };
}

/** The pub-sub tables for docs/threat-model.md: the in-process model, then `network` (the same rows over UDP, pubsub-network-attacks.ts). */
export function renderPubSubReport(network: string): string {
  const lines = [
    '## Publish-subscribe: the broker as adversary',
    '',
    'draft-hartke-core-e2e-security-reqs-00 §3.5 (R5.1–R5.7, NR5.x). The broker attacks the publications it stores and serves to a subscriber of one topic (`src/attack/pubsub-attacks.ts`); a second topic of the same security group supplies the publication it moves. Protected: draft-ietf-ace-coap-pubsub-profile publications with the coapsec topic and Content-Format binding (docs/pubsub.md).',
    '',
    '| Threat | draft-hartke-core-e2e-security-reqs says | Requirements | no protection | protected publications |',
    '|---|---|---|---|---|',
  ];
  for (const row of PUBSUB_THREAT_ROWS) {
    const cells = PUBSUB_PROTECTIONS.map((p) => {
      const o = runPubSubThreat(row, p);
      return `${o.verdict}: ${o.detail.replace(/\|/g, '/')}`;
    });
    lines.push(`| ${row.threat} | ${row.required ? 'REQUIRED' : 'NOT REQUIRED'} | ${row.requirements.join(', ') || '—'} | ${cells.join(' | ')} |`);
  }
  lines.push('', network);
  return lines.join('\n');
}
