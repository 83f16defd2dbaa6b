/**
 * What an Authorization Server must remember across restarts: the count of tokens issued (each
 * token's cti, and the source of new OSCORE Input Material ids, so that an id is never handed out
 * twice — RFC 9203 §3.2: "unique in the sets of its OSCORE Input Materials") and, per Input
 * Material id, the client and audience it was issued to (RFC 9203 §3.1: an update of access rights
 * names the id, and "The AS MUST verify that the received value identifies a proof-of-possession
 * key that has previously been issued to the requesting client").
 *
 * The file is JSON, replaced durably before the token that uses a new number leaves the AS: a
 * crash can skip a number, never repeat one. At most `maxMaterials` ids are remembered, the oldest
 * forgotten first (its client can no longer update rights; it asks for a new token).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileDurably } from '../credentials/durable-file.js';
import { bytesToHex as hex } from '../util/bytes.js';

export interface IssuedMaterial {
  readonly client: string;
  readonly audience: string;
}

export interface AsState {
  /** The next token number, counted and made durable before it is returned. */
  nextTokenNumber(): number;
  /** Remembers who an Input Material id was issued to (durably). */
  recordMaterial(id: Uint8Array, issued: IssuedMaterial): void;
  materialOwner(id: Uint8Array): IssuedMaterial | undefined;
}

const DEFAULT_MAX_MATERIALS = 4096;

/** Memory only: for tests and for an AS whose tokens need not outlive it. */
export class MemoryAsState implements AsState {
  protected issued = 0;
  protected readonly materials = new Map<string, IssuedMaterial>();
  constructor(protected readonly maxMaterials = DEFAULT_MAX_MATERIALS) {}

  nextTokenNumber(): number {
    return ++this.issued;
  }

  recordMaterial(id: Uint8Array, issued: IssuedMaterial): void {
    this.materials.delete(hex(id));
    this.materials.set(hex(id), issued);
    while (this.materials.size > this.maxMaterials) this.materials.delete(this.materials.keys().next().value!);
  }

  materialOwner(id: Uint8Array): IssuedMaterial | undefined {
    return this.materials.get(hex(id));
  }
}

export class AsStateError extends Error {
  override readonly name = 'AsStateError';
}

/** The state in a JSON file: {"issued": N, "materials": {"<id hex>": {"client", "audience"}}}. */
export class FileAsState extends MemoryAsState {
  constructor(
    private readonly file: string,
    maxMaterials = DEFAULT_MAX_MATERIALS,
  ) {
    super(maxMaterials);
    if (!existsSync(file)) {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      return;
    }
    let data: { issued?: unknown; materials?: unknown };
    try {
      data = JSON.parse(readFileSync(file, 'utf8')) as typeof data;
    } catch (e) {
      throw new AsStateError(`${file}: not a valid AS state file (${(e as Error).message})`);
    }
    if (!Number.isSafeInteger(data.issued) || (data.issued as number) < 0) throw new AsStateError(`${file}: "issued" must be a whole number`);
    this.issued = data.issued as number;
    for (const [id, entry] of Object.entries((data.materials ?? {}) as Record<string, IssuedMaterial>)) {
      if (!/^([0-9a-f]{2})+$/.test(id) || typeof entry?.client !== 'string' || typeof entry.audience !== 'string') throw new AsStateError(`${file}: bad material entry "${id}"`);
      this.materials.set(id, { client: entry.client, audience: entry.audience });
    }
  }

  override nextTokenNumber(): number {
    const n = super.nextTokenNumber();
    this.save();
    return n;
  }

  override recordMaterial(id: Uint8Array, issued: IssuedMaterial): void {
    super.recordMaterial(id, issued);
    this.save();
  }

  private save(): void {
    writeFileDurably(this.file, JSON.stringify({ issued: this.issued, materials: Object.fromEntries(this.materials) }) + '\n');
  }
}
