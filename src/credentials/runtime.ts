/**
 * From credentials to run-time Security Contexts: every context gets a persistent sequence-number
 * store (Appendix B.1.1), and one that resumes from earlier state counts as restarted, so its replay
 * windows start uninitialised and the first request is challenged with Echo (Appendix B.1.2).
 * Recipients that share a sender (same master secret, salt, ID Context and Sender ID) share one
 * context and one sequence number: two counters for one key would repeat nonces.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { equalBytes } from '../oscore/context.js';
import { OscoreSecurityContext, type SecurityContextInput, type SequenceSource } from '../oscore/security-context.js';
import type { OscoreContextConfig } from './oscore-params.js';
import { SequenceNumberStore, ensureStateDirectory, sequenceFileName, type SenderContextIdentity } from './sequence-store.js';
import { ContextTable } from '../oscore/context-table.js';
import type { ServerRecipient } from './credentials-file.js';

/**
 * Where a context's Sender Sequence Number is kept: a state directory (a file per context named by
 * its identity) or an explicit file. With `registryDirectory` (normally the common state
 * directory, defaultStateDirectory()), the context is also registered there, so the same context
 * configured elsewhere continues the same counter (sequence-store.ts).
 */
export type SequencePersistence = ({ stateDirectory: string } | { sequenceFile: string }) & { registryDirectory?: string };

export interface OpenedContext {
  context: OscoreSecurityContext;
  /** Writes the exact next sequence number back and releases the lock. */
  close(): void;
}

export function openSecurityContext(config: OscoreContextConfig, persistence: SequencePersistence, recipientNames?: readonly (string | undefined)[]): OpenedContext {
  const fileName = sequenceFileName(config);
  const registry = persistence.registryDirectory;
  const restarted = existsSync(counterPath(persistence, fileName)) || (registry !== undefined && existsSync(join(registry, fileName)));
  const store = openStore(persistence, fileName, config.sequenceSaveInterval);
  try {
    const context = new OscoreSecurityContext({ ...config, ...(recipientNames ? { recipientNames } : {}) }, store, restarted);
    return { context, close: () => store.close() };
  } catch (error) {
    store.close();
    throw error;
  }
}

function counterPath(persistence: SequencePersistence, fileName: string): string {
  return 'sequenceFile' in persistence ? persistence.sequenceFile : join(persistence.stateDirectory, fileName);
}

/** Opens the counter named `fileName` (sequenceFileName of its context), registered if asked. */
function openStore(persistence: SequencePersistence, fileName: string, reserve: number): SequenceNumberStore {
  if ('stateDirectory' in persistence) ensureStateDirectory(persistence.stateDirectory);
  const path = counterPath(persistence, fileName);
  const registry = persistence.registryDirectory;
  if (registry === undefined) return SequenceNumberStore.openFile(path, { reserve });
  ensureStateDirectory(registry);
  return SequenceNumberStore.openFile(path, { reserve, mirrors: [join(registry, fileName)] });
}

/**
 * A server context's counter, opened (locked, reservation written and fsync'd) when the context
 * verifies its first request (prepare) or needs its first number, not at start-up: opening each of
 * a server's contexts — one per device, 100,000 in issue 21 — cost two lock files and two fsync'd
 * writes per context (1,000 contexts: 2.8 s). Opened before the first request is accepted, the file
 * still tells a restart that the context was in use, so its replay windows start uninitialised
 * (Appendix B.1.2). The lock conflict a second process using the same context meets is reported
 * at that first request (a CredentialsError, which the server answers 5.00) rather than at
 * start-up; a number is still never handed out before its reservation is durable (B.1.1). Its file name (two SHA-256 runs)
 * is also worked out on first use, and whether the file exists (the context resumes) is looked up
 * in one listing of each directory, made at start-up.
 */
class DeferredSequenceStore implements SequenceSource {
  #store: SequenceNumberStore | undefined;
  #fileName: string | undefined;

  constructor(
    private readonly persistence: SequencePersistence,
    private readonly reserve: number,
    private readonly listed: Listing,
    /** The context's identity, which names the counter; asked on first use. */
    private readonly identity: () => SenderContextIdentity,
  ) {}

  next(): number {
    return this.opened().next();
  }

  /** The context is about to accept its first request: from now on a restart must know (B.1.2). */
  prepare(): void {
    this.opened();
  }

  /** Whether the counter exists from an earlier run. */
  resumes(): boolean {
    const { inState, inRegistry } = this.listed;
    const name = this.fileName;
    return (inState ? inState.has(name) : existsSync(counterPath(this.persistence, name))) || inRegistry?.has(name) === true;
  }

  close(): void {
    this.#store?.close();
  }

  private opened(): SequenceNumberStore {
    return (this.#store ??= openStore(this.persistence, this.fileName, this.reserve));
  }

  private get fileName(): string {
    return (this.#fileName ??= sequenceFileName(this.identity()));
  }
}

/** The server's contexts: recipients grouped by the sender they share; counters opened on first use. */
export function openServerContexts(recipients: readonly ServerRecipient[], persistence: SequencePersistence): OpenedContext[] {
  const groups = groupBySender(recipients);
  const listed = listing(persistence);
  const opened: OpenedContext[] = [];
  for (const group of groups) {
    let context: OscoreSecurityContext | undefined;
    const store = new DeferredSequenceStore(persistence, group[0]!.context.sequenceSaveInterval, listed, () => context!.senderIdentity());
    context = new OscoreSecurityContext(contextInput(group), store, () => store.resumes());
    opened.push({ context, close: () => store.close() });
  }
  return opened;
}

export interface OpenedTable {
  table: ContextTable;
  /** Writes the exact next sequence numbers of the contexts used back and releases their locks. */
  close(): void;
}

/**
 * The server's contexts as openServerContexts makes them, kept as bytes in a ContextTable until a
 * request names them (issue 21: a context per device). Each entry's counter is a
 * DeferredSequenceStore made when the entry is first materialised and kept for the table's life,
 * so the store is opened at most once. Contexts that run Appendix B.2 cannot be table entries.
 */
export function openServerTable(recipients: readonly ServerRecipient[], persistence: SequencePersistence, options: { active?: number } = {}): OpenedTable {
  const listed = listing(persistence);
  const stores: DeferredSequenceStore[] = [];
  const groups = groupBySender(recipients);
  const reserves = new Uint32Array(groups.length);
  const table = new ContextTable({
    ...options,
    expected: groups.length,
    sequences: {
      source(entry, identity) {
        const store = new DeferredSequenceStore(persistence, reserves[entry]!, listed, identity);
        stores.push(store);
        return store;
      },
      resumes: (entry, identity) => new DeferredSequenceStore(persistence, reserves[entry]!, listed, identity).resumes(),
    },
  });
  for (const group of groups) reserves[table.add(contextInput(group))] = group[0]!.context.sequenceSaveInterval;
  return { table, close: () => stores.forEach((s) => s.close()) };
}

type Listing = { inState: Set<string> | undefined; inRegistry: Set<string> | undefined };

function listing(persistence: SequencePersistence): Listing {
  return {
    inState: 'stateDirectory' in persistence ? listFiles(persistence.stateDirectory) : undefined,
    inRegistry: persistence.registryDirectory !== undefined ? listFiles(persistence.registryDirectory) : undefined,
  };
}

/**
 * Recipients grouped by the sender they share (one context, one counter each), in file order.
 * Grouped by a hash of the fields sequenceFileName hashes and compared byte by byte on a match: a
 * string key per recipient (built a character at a time) was a tenth of loading 100,000 of them.
 */
function groupBySender(recipients: readonly ServerRecipient[]): ServerRecipient[][] {
  const groups: ServerRecipient[][] = [];
  /** Group index + 1 of the first group with a hash; later groups with the same hash chain through `collided`. */
  const byHash = new Map<number, number>();
  const collided: number[] = [];
  for (const recipient of recipients) {
    const hash = senderHash(recipient.context);
    let g = (byHash.get(hash) ?? 0) - 1;
    while (g >= 0 && !sameSender(groups[g]![0]!.context, recipient.context)) g = (collided[g] ?? 0) - 1;
    if (g >= 0) {
      groups[g]!.push(recipient);
      continue;
    }
    const index = groups.push([recipient]) - 1;
    const first = byHash.get(hash);
    if (first === undefined) byHash.set(hash, index + 1);
    else {
      // Appended to the chain's end, so the chain stays in file order.
      let last = first - 1;
      while (collided[last] !== undefined) last = collided[last]! - 1;
      collided[last] = index + 1;
    }
  }
  return groups;
}

const EMPTY = new Uint8Array(0);

/**
 * The fields sequenceFileName hashes: an absent salt is the empty one (§3.2); an absent ID Context
 * is not an empty one. 30 bits, so that the Map keys are small integers, not a heap number each.
 */
function senderHash(c: OscoreContextConfig): number {
  let hash = mix(0x811c9dc5, c.masterSecret);
  hash = mix(hash, c.masterSalt ?? EMPTY);
  hash = c.idContext === undefined ? Math.imul(hash ^ 0x100, 0x01000193) : mix(hash, c.idContext);
  return (mix(hash, c.senderId) >>> 2) & 0x3fffffff;
}

function mix(hash: number, field: Uint8Array): number {
  hash = Math.imul(hash ^ (0x200 + field.length), 0x01000193);
  for (let i = 0; i < field.length; i++) hash = Math.imul(hash ^ field[i]!, 0x01000193);
  return hash;
}

function sameSender(a: OscoreContextConfig, b: OscoreContextConfig): boolean {
  if ((a.idContext === undefined) !== (b.idContext === undefined)) return false;
  return (
    equalBytes(a.masterSecret, b.masterSecret) &&
    equalBytes(a.masterSalt ?? EMPTY, b.masterSalt ?? EMPTY) &&
    (a.idContext === undefined || equalBytes(a.idContext, b.idContext!)) &&
    equalBytes(a.senderId, b.senderId)
  );
}

/** One context's input for recipients sharing a sender; a lone recipient's own config as it is. */
function contextInput(group: readonly ServerRecipient[]): SecurityContextInput {
  const first = group[0]!;
  const own = first.context;
  if (group.length === 1 && own.name === first.name && own.recipientIds.length === 1 && equalBytes(own.recipientIds[0]!, first.recipientId)) return own;
  return { ...own, recipientIds: group.map((r) => r.recipientId), recipientNames: group.map((r) => r.name) };
}

function listFiles(directory: string): Set<string> {
  try {
    return new Set(readdirSync(directory));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw error;
  }
}
