/**
 * What a KUDOS peer keeps on disk (draft-ietf-core-oscore-key-update §4.3, §4.4.1), one record per
 * peer context, always rewritten whole and atomically (credentials/durable-file.ts):
 *
 * - `current`: the Latest Master Secret and Salt with its Sender Sequence Number reservation;
 * - `next`: while PENDING, CTX_NEW with its own reservation, plus both (X, nonce) pairs;
 * - `retained`: CTX_OLD kept after key confirmation for late incoming messages (§4.6);
 * - `bootstrap`: the Bootstrap Master Secret and Salt of no-FS mode (§4.4.1), copied unchanged;
 * - `peerCapability`: whether the peer is CAPABLE, which §4.4.2 says a CAPABLE device "MUST" store.
 *
 * Because CTX_NEW and its sequence reservation are in the same file as CTX_OLD, no crash leaves a
 * context on disk without the reservation that keeps RFC 8613 Appendix B.1.1 true for it. Nothing
 * of CTX_TEMP and no own (X, nonce) pair not yet part of a CTX_NEW is ever written: after a crash
 * they are gone, a new random nonce gives a new CTX_TEMP, and its Sender Sequence Numbers are
 * fresh (§4.4.1: "the OSCORE Master Secret and Master Salt from such temporary Security Contexts
 * are not stored on disk").
 */
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { writeFileDurably } from '../credentials/durable-file.js';
import type { ContextMaterial, NoncePair } from './update-ctx.js';
import { bytesToHex as hex } from '../util/bytes.js';

export type PeerCapability = 'unknown' | 'capable' | 'non-capable';

export interface SecretPair {
  masterSecret: Uint8Array;
  masterSalt: Uint8Array;
}

export interface PersistedContext extends SecretPair {
  /** Every Sender Sequence Number handed out for this context is below this (B.1.1). */
  reservedUpTo: number;
  /** An upper bound of the failed decryptions under its Recipient Key (integrity.ts); absent: none. */
  failedDecryptions?: number;
}

export interface PersistedPending {
  next: PersistedContext;
  ownPair: NoncePair;
  peerPair: NoncePair;
  noForwardSecrecy: boolean;
  preserveObservations: boolean;
}

export interface KudosRecord {
  current: PersistedContext;
  pending?: PersistedPending;
  retained?: SecretPair & { until: number };
  bootstrap?: SecretPair;
  peerCapability: PeerCapability;
}

/** Where a record lives. `read` returns undefined when nothing was ever written. */
export interface KudosStorage {
  read(): KudosRecord | undefined;
  /** Must be atomic and durable when it returns (a crash leaves the old or the new record). */
  write(record: KudosRecord): void;
}

/** The identity a record belongs to: the parameters KUDOS never changes (§4 bullet list). */
export type ContextIdentity = Pick<ContextMaterial, 'senderId' | 'recipientId' | 'idContext' | 'aead' | 'hkdf'>;

/** One JSON file per peer context in a state directory, replaced with writeFileDurably. */
export class KudosFileStorage implements KudosStorage {
  readonly path: string;
  readonly #identity: string;

  constructor(directory: string, identity: ContextIdentity) {
    mkdirSync(directory, { recursive: true, mode: 0o700 });
    this.#identity = identityString(identity);
    const name = createHash('sha256').update('coapsec kudos v1\0').update(this.#identity).digest('hex').slice(0, 32);
    this.path = join(directory, `kudos-${name}.json`);
  }

  read(): KudosRecord | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const json = JSON.parse(text) as { identity?: string; record?: unknown };
    if (json.identity !== this.#identity) throw new Error(`${this.path}: KUDOS state of another context`);
    return fromJson(json.record);
  }

  /** Deletes the record: its context is gone (an EDHOC-derived context that did not outlive its process or was replaced). */
  remove(): void {
    rmSync(this.path, { force: true });
  }

  write(record: KudosRecord): void {
    writeFileDurably(this.path, `${JSON.stringify({ version: 1, identity: this.#identity, record: toJson(record) })}\n`);
  }
}

function identityString(id: ContextIdentity): string {
  return [hex(id.senderId), hex(id.recipientId), id.idContext === undefined ? '-' : hex(id.idContext), id.aead, id.hkdf].join('/');
}

const unhex = (s: unknown): Uint8Array => {
  if (typeof s !== 'string' || !/^([0-9a-f]{2})*$/.test(s)) throw new Error('KUDOS state: malformed byte string');
  return Uint8Array.from(Buffer.from(s, 'hex'));
};
const count = (n: unknown): number => {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new Error('KUDOS state: malformed number');
  return n;
};

type Json = Record<string, unknown>;

function toJson(r: KudosRecord): Json {
  const secrets = (s: SecretPair): Json => ({ masterSecret: hex(s.masterSecret), masterSalt: hex(s.masterSalt) });
  const context = (c: PersistedContext): Json => ({ ...secrets(c), reservedUpTo: c.reservedUpTo, ...(c.failedDecryptions ? { failedDecryptions: c.failedDecryptions } : {}) });
  const pair = (p: NoncePair): Json => ({ x: p.x, nonce: hex(p.nonce) });
  return {
    current: context(r.current),
    ...(r.pending
      ? {
          pending: {
            next: context(r.pending.next),
            ownPair: pair(r.pending.ownPair),
            peerPair: pair(r.pending.peerPair),
            noForwardSecrecy: r.pending.noForwardSecrecy,
            preserveObservations: r.pending.preserveObservations,
          },
        }
      : {}),
    ...(r.retained ? { retained: { ...secrets(r.retained), until: r.retained.until } } : {}),
    ...(r.bootstrap ? { bootstrap: secrets(r.bootstrap) } : {}),
    peerCapability: r.peerCapability,
  };
}

function fromJson(value: unknown): KudosRecord {
  const o = value as Json;
  const secrets = (s: unknown): SecretPair => ({ masterSecret: unhex((s as Json).masterSecret), masterSalt: unhex((s as Json).masterSalt) });
  const context = (c: unknown): PersistedContext => {
    const failed = (c as Json).failedDecryptions;
    return { ...secrets(c), reservedUpTo: count((c as Json).reservedUpTo), ...(failed !== undefined ? { failedDecryptions: count(failed) } : {}) };
  };
  const pair = (p: unknown): NoncePair => ({ x: count((p as Json).x), nonce: unhex((p as Json).nonce) });
  const capability = o.peerCapability;
  if (capability !== 'unknown' && capability !== 'capable' && capability !== 'non-capable') throw new Error('KUDOS state: malformed peer capability');
  const record: KudosRecord = { current: context(o.current), peerCapability: capability };
  if (o.pending !== undefined) {
    const p = o.pending as Json;
    record.pending = {
      next: context(p.next),
      ownPair: pair(p.ownPair),
      peerPair: pair(p.peerPair),
      noForwardSecrecy: p.noForwardSecrecy === true,
      preserveObservations: p.preserveObservations === true,
    };
  }
  if (o.retained !== undefined) record.retained = { ...secrets(o.retained), until: count((o.retained as Json).until) };
  if (o.bootstrap !== undefined) record.bootstrap = secrets(o.bootstrap);
  return record;
}
