/**
 * Scheduled rekeying without a redistribution (R5.7; a coapsec extension of the profile's rekeying,
 * RFC 9594 §6): a generation's key lives in epochs of a fixed lifetime, and the key, Base IV and Gid
 * of epoch e + 1 are derived from those of epoch e by HKDF-SHA256, a one-way step. When an epoch
 * ends every member steps forward and forgets the old key, so a member's key material taken later
 * does not decrypt what was published in earlier epochs (forward secrecy on a schedule), and a
 * member who joins is issued the current epoch's key, not the earlier ones. A removed member still
 * knows every later epoch of its generation: removal makes a new, random generation
 * (key-distribution.ts).
 */
import { hkdfSync } from 'node:crypto';
import { equalBytes } from '../oscore/context.js';
import { bytesView } from '../cose/cbor.js';
import { PubSubKeyError, type GroupKey } from './key-material.js';

/** When the held key's epoch began (seconds since the epoch) and how long each epoch lasts. */
export interface KeyEpochs {
  readonly start: number;
  readonly lifetime: number;
}

/** Past epochs' Gids remembered per holder, to name an object under one as retired rather than unknown. */
const REMEMBERED_GIDS = 16;
/** A holder refuses to step further than this many epochs at once (a key file left unused for years). */
const MAX_STEPS = 100_000;

const derive = (g: GroupKey, label: string, length: number): Uint8Array =>
  bytesView(Buffer.from(hkdfSync('sha256', g.key, g.gid, `coapsec pubsub epoch ${label}`, length)));

/** The next epoch's key: same algorithm, version and expiry; key, Base IV and Gid derived one way. */
export function nextEpochKey(g: GroupKey): GroupKey {
  return { ...g, key: derive(g, 'key', g.key.length), baseIv: derive(g, 'iv', g.baseIv.length), gid: derive(g, 'gid', g.gid.length) };
}

/** The epoch (0 for the held key's) that `nowMs` falls in; never negative. */
export function epochIndex(epochs: KeyEpochs, nowMs: number): number {
  return Math.max(0, Math.floor((nowMs / 1000 - epochs.start) / epochs.lifetime));
}

/**
 * One member's current epoch key, stepped forward as time passes; what it stepped over is gone.
 * Without epochs it holds the generation's key unchanged.
 */
export class EpochKeyHolder {
  #key: GroupKey;
  #index = 0;
  readonly #retired: Uint8Array[] = [];

  constructor(
    key: GroupKey,
    readonly epochs: KeyEpochs | undefined,
  ) {
    this.#key = key;
  }

  /** The key of the epoch `nowMs` is in (stepping forward to it). */
  current(nowMs: number): GroupKey {
    if (this.epochs !== undefined) this.#stepTo(epochIndex(this.epochs, nowMs));
    return this.#key;
  }

  /**
   * The key whose Gid is `gid`: the current one, or a later epoch up to `lookahead` epochs ahead
   * (a publisher whose clock is a little ahead), which then becomes current. Undefined otherwise.
   */
  find(gid: Uint8Array, nowMs: number, lookahead = 1): GroupKey | undefined {
    const current = this.current(nowMs);
    if (equalBytes(current.gid, gid)) return current;
    if (this.epochs === undefined) return undefined;
    let candidate = current;
    for (let step = 1; step <= lookahead; step++) {
      candidate = nextEpochKey(candidate);
      if (equalBytes(candidate.gid, gid)) {
        this.#stepTo(this.#index + step);
        return this.#key;
      }
    }
    return undefined;
  }

  /** True for the Gid of an epoch this holder has stepped over. */
  isRetired(gid: Uint8Array): boolean {
    return this.#retired.some((g) => equalBytes(g, gid));
  }

  #stepTo(index: number): void {
    if (index <= this.#index) return;
    if (index - this.#index > MAX_STEPS) throw new PubSubKeyError(`the key material is ${index - this.#index} epochs old: get a new key file`);
    while (this.#index < index) {
      this.#retired.push(this.#key.gid);
      if (this.#retired.length > REMEMBERED_GIDS) this.#retired.shift();
      this.#key = nextEpochKey(this.#key);
      this.#index++;
    }
  }
}
