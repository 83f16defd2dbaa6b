/**
 * Finds (key, nonce) reuse in a capture of OSCORE traffic between one client and one server
 * (kudos-relay.ts), for the kill -9 tests where the peers are other processes: every protected
 * datagram is attributed to the context whose key verifies it — the contexts the KUDOS records
 * held at some point, and the CTX_TEMPs derived from the divergent messages on the wire — and its
 * nonce is (that context, sender, Partial IV). Retransmissions (identical bytes) count once.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { decodeMessage } from '../src/coap/codec.js';
import { getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { deriveKeys, pairInput, updateCtx, type ContextMaterial } from '../src/kudos/update-ctx.js';
import { decodeOscoreOption } from '../src/oscore/option.js';
import { unprotectRequest, unprotectResponse } from '../src/oscore/protect.js';
import type { Datagram } from './kudos-relay.js';

type Secrets = { masterSecret: Uint8Array; masterSalt: Uint8Array };
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const CLIENT_ID = Uint8Array.of(0x01);
const SERVER_ID = Uint8Array.of(0x02);

/** Every context the peers' records in `stateDirectories` hold now; call after each step. */
export class ContextCollector {
  readonly contexts = new Map<string, Secrets>();
  add(secrets: Secrets): void {
    this.contexts.set(`${hex(secrets.masterSecret)}/${hex(secrets.masterSalt)}`, secrets);
  }
  snapshot(stateDirectories: readonly string[]): void {
    for (const directory of stateDirectories) {
      let names: string[] = [];
      try {
        names = readdirSync(join(directory, 'kudos'));
      } catch {
        continue;
      }
      for (const name of names) {
        const record = (JSON.parse(readFileSync(join(directory, 'kudos', name), 'utf8')) as { record: Record<string, { masterSecret: string; masterSalt: string; next?: { masterSecret: string; masterSalt: string } }> }).record;
        for (const entry of [record.current, record.retained, record.pending?.next]) {
          if (entry) this.add({ masterSecret: Buffer.from(entry.masterSecret, 'hex'), masterSalt: Buffer.from(entry.masterSalt, 'hex') });
        }
      }
    }
  }
}

export interface AuditResult {
  /** Protected datagrams no known context verifies (the audit is incomplete if any). */
  unattributed: number;
  attributed: number;
  /** "context/sender/piv" used by two different datagrams. */
  reused: string[];
}

export function auditNonces(datagrams: readonly Datagram[], collector: ContextCollector): AuditResult {
  const unique = new Map<string, Datagram>();
  for (const d of datagrams) unique.set(`${d.from}/${d.data.toString('hex')}`, d);
  const messages = [...unique.values()].flatMap((d) => {
    try {
      return [{ from: d.from, message: decodeMessage(d.data) }];
    } catch {
      return [];
    }
  });
  // CTX_TEMPs: one per divergent (X, nonce) on the wire and per known CTX_IN.
  const candidates = new Map(collector.contexts);
  for (const { message } of messages) {
    const kudos = oscoreOf(message)?.kudos;
    if (!kudos || (kudos.x & 0x40) !== 0) continue;
    for (const ctxIn of collector.contexts.values()) {
      const temp = updateCtx(pairInput({ x: kudos.x, nonce: kudos.nonce }), new Uint8Array(0), material(ctxIn, CLIENT_ID, SERVER_ID));
      candidates.set(`temp ${hex(temp.masterSecret)}/${hex(temp.masterSalt)}`, temp);
    }
  }
  const keys = [...candidates].map(([name, secrets]) => ({
    name,
    // Verifies what the client sent (the server's recipient side) and what the server sent.
    ofClient: deriveKeys(material(secrets, SERVER_ID, CLIENT_ID)).recipient,
    ofServer: deriveKeys(material(secrets, CLIENT_ID, SERVER_ID)).recipient,
  }));
  const used = new Map<string, number>();
  const result: AuditResult = { unattributed: 0, attributed: 0, reused: [] };
  const lastRequestByToken = new Map<string, { kid: Uint8Array; piv: Uint8Array }>();
  for (const { from, message } of messages) {
    const option = oscoreOf(message);
    if (!option?.piv) continue;
    let owner: string | undefined;
    if (from === 'client') {
      lastRequestByToken.set(hex(message.token), { kid: option.kid ?? new Uint8Array(0), piv: option.piv });
      owner = keys.find((k) => unprotectRequest(message, () => k.ofClient).ok)?.name;
    } else {
      const binding = lastRequestByToken.get(hex(message.token));
      owner = binding ? keys.find((k) => unprotectResponse(message, k.ofServer, binding).ok)?.name : undefined;
    }
    if (owner === undefined) {
      result.unattributed++;
      continue;
    }
    result.attributed++;
    const nonce = `${owner}/${from}/${hex(option.piv)}`;
    used.set(nonce, (used.get(nonce) ?? 0) + 1);
  }
  result.reused = [...used].filter(([, n]) => n > 1).map(([k]) => k);
  return result;
}

function material(secrets: Secrets, senderId: Uint8Array, recipientId: Uint8Array): ContextMaterial {
  return { masterSecret: secrets.masterSecret, masterSalt: secrets.masterSalt, senderId, recipientId, aead: 10, hkdf: -10 };
}

function oscoreOf(message: CoapMessage): ReturnType<typeof decodeOscoreOption> | undefined {
  const value = getOption(message, OptionNumber.Oscore);
  if (value === undefined) return undefined;
  try {
    return decodeOscoreOption(value);
  } catch {
    return undefined;
  }
}
