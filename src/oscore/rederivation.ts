/**
 * RFC 8613 Appendix B.2, "Security Context Derived Multiple Times": the pure protocol pieces.
 *
 *                       Client                Server
 *                         |                      |
 *  1. Protect with        |      request #1      |
 *     ID Context = ID1    |--------------------->| 2. Verify with
 *                         |  kid_context = ID1   |    ID Context = ID1
 *                         |      response #1     |    Protect with
 *  3. Verify with         |<---------------------|    ID Context = R2||ID1
 *     ID Context = R2||ID1|   kid_context = R2   |
 *     Protect with        |      request #2      |
 *     ID Context = R2||R3 |--------------------->| 4. Verify with
 *                         | kid_context = R2||R3 |    ID Context = R2||R3
 *                         |      response #2     |    Protect with
 *  5. Verify with         |<---------------------|    ID Context = R2||R3
 *     ID Context = R2||R3 |                      |
 *
 * Note the order of the concatenations: the RFC's figure and steps 2–4 put R2 first, in both
 * ID2 = R2 || ID1 and ID3 = R2 || R3 (ID1 = R1 when the client initiates). This module follows
 * the RFC text, not "R1 || R2".
 *
 * Nothing here does I/O except drawing random bytes; the server and client layers
 * (server/oscore.ts, client/oscore.ts) run the steps.
 */
import { randomBytes } from 'node:crypto';
import { encodeOscoreOption, decodeOscoreOption } from './option.js';
import { getOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { MalformedOscoreOption } from './errors.js';

/**
 * "The length of the nonces R1, R2, and R3 is application specific ... typically, at least 8
 * bytes long." 8 bytes: an R2 collision is expected only after about 2^32 responses #1.
 */
export const B2_NONCE_LENGTH = 8;

/**
 * A fresh random nonce (R1, R2 or R3). "This protocol MUST NOT be used unless both endpoints have
 * good sources of randomness": node's CSPRNG.
 */
export function newB2Nonce(length = B2_NONCE_LENGTH): Uint8Array {
  if (!Number.isInteger(length) || length < 1 || length > 127) throw new RangeError(`B.2 nonce length must be 1-127 bytes, not ${length}`);
  return Uint8Array.from(randomBytes(length));
}

export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * Step 2: "derives a second security context with ID Context = ID2 = R2 || ID1". A context without
 * an ID Context (ID1 absent) is treated as ID1 = the empty string, so ID2 = R2.
 */
export function secondIdContext(r2: Uint8Array, id1: Uint8Array | undefined): Uint8Array {
  return concatBytes(r2, id1 ?? new Uint8Array(0));
}

/** Step 3: "a third security context derived from ID Context = ID3 = R2 || R3". */
export function thirdIdContext(r2: Uint8Array, r3: Uint8Array): Uint8Array {
  return concatBytes(r2, r3);
}

/**
 * Step 4: "the first part of ID3 is identical to an R2 sent in a previous response #1". Our R2s
 * all have the same length, so the first part is the prefix of that length; R3 must not be empty.
 */
export function r2Of(id3: Uint8Array, r2Length = B2_NONCE_LENGTH): Uint8Array | undefined {
  return id3.length > r2Length ? id3.subarray(0, r2Length) : undefined;
}

/**
 * B.2 moves R1 (step 1), R2 (step 2) and R2 || R3 (step 3) "wrapped in a CBOR bstr as 'kid
 * context'": the 'kid context' field of the OSCORE option holds the CBOR encoding of a byte string
 * (RFC 8949 §3.1, major type 2), while the ID Context the keys are derived from is the value
 * inside it — ID1 = R1, ID2 = R2 || ID1, ID3 = R2 || R3. An ordinary request (§5.1) carries its
 * ID Context as it is; only the B.2 messages wrap it. The field is at most 255 bytes (§6.1), so
 * the head is one byte (length < 24) or two (0x58, length).
 */
export function wrapB2KidContext(value: Uint8Array): Uint8Array {
  if (value.length > 253) throw new RangeError(`a B.2 'kid context' value of ${value.length} bytes does not fit the 255-byte field once wrapped`);
  const head = value.length < 24 ? [0x40 | value.length] : [0x58, value.length];
  const out = new Uint8Array(head.length + value.length);
  out.set(head, 0);
  out.set(value, head.length);
  return out;
}

/**
 * The value inside a B.2 'kid context', or undefined when the field is not exactly one definite-
 * length CBOR bstr in preferred encoding (RFC 8949 §4.2.1: the shortest head) — then it is not a
 * B.2 message.
 */
export function unwrapB2KidContext(field: Uint8Array): Uint8Array | undefined {
  const initial = field[0];
  if (initial === undefined) return undefined;
  let length: number;
  let head: number;
  if (initial >= 0x40 && initial < 0x58) {
    length = initial & 0x1f;
    head = 1;
  } else if (initial === 0x58 && field.length >= 2 && field[1]! >= 24) {
    length = field[1]!;
    head = 2;
  } else {
    return undefined;
  }
  return field.length === head + length ? field.subarray(head) : undefined;
}

/**
 * Steps 2–3: response #1 carries "R2 wrapped in a CBOR bstr as 'kid context'". The OSCORE option is
 * Class U and not part of the AAD (§5.4: only request_kid, request_piv and Class I options are), so
 * the 'kid context' is added to an already protected response without touching its ciphertext.
 */
export function withResponseKidContext(response: CoapMessage, r2: Uint8Array): CoapMessage {
  const value = getOption(response, OptionNumber.Oscore);
  if (value === undefined) throw new Error('withResponseKidContext: the response is not OSCORE-protected');
  const decoded = decodeOscoreOption(value);
  const encoded = encodeOscoreOption({ ...decoded, kidContext: wrapB2KidContext(r2) });
  return { ...response, options: response.options.map((o) => (o.number === OptionNumber.Oscore ? { number: o.number, value: encoded } : o)) };
}

/**
 * The 'kid context' field of a response as received (a B.2 response #1 carries one; unwrap it with
 * unwrapB2KidContext); undefined when there is none.
 */
export function responseKidContext(response: CoapMessage): Uint8Array | undefined {
  const value = getOption(response, OptionNumber.Oscore);
  if (value === undefined) return undefined;
  try {
    const kidContext = decodeOscoreOption(value).kidContext;
    return kidContext === undefined ? undefined : Uint8Array.from(kidContext);
  } catch (e) {
    if (e instanceof MalformedOscoreOption) return undefined;
    throw e;
  }
}

export interface R2CacheOptions {
  /** How many R2 values may be outstanding at once, over all clients (B.2.1). Default 16. */
  capacity?: number;
  /** How long an R2 stays valid, in ms (B.2.1: "set a timer when caching R2"). Default 60 s. */
  lifetimeMs?: number;
  now?: () => number;
}

/**
 * The server's cache of R2 values sent in responses #1 (step 2: "and caches R2"), per
 * (security context, client kid). Bounded and with expiry, per B.2.1: "The server needs to handle
 * the case when the maximum number of cached R2s is reached" — `add` then returns false and the
 * caller answers 5.03 — and "set a timer when caching R2, and remove R2 ... at timeout". In memory
 * only: "state information can be flushed at reboot".
 */
export class R2Cache<K> {
  readonly capacity: number;
  readonly lifetimeMs: number;
  private readonly now: () => number;
  private readonly entries: { key: K; r2: Uint8Array; expires: number }[] = [];

  constructor(options: R2CacheOptions = {}) {
    this.capacity = options.capacity ?? 16;
    this.lifetimeMs = options.lifetimeMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    this.prune();
    return this.entries.length;
  }

  /** Caches a fresh R2; false when full ("not capable of executing it"). */
  add(key: K, r2: Uint8Array): boolean {
    this.prune();
    if (this.entries.length >= this.capacity) return false;
    this.entries.push({ key, r2: Uint8Array.from(r2), expires: this.now() + this.lifetimeMs });
    return true;
  }

  /** Whether `r2` was sent for `key` and is still outstanding. */
  has(key: K, r2: Uint8Array): boolean {
    this.prune();
    return this.entries.some((e) => e.key === key && sameBytes(e.r2, r2));
  }

  /** Step 4: "removes all instances of R2 associated to this security context from the cache". */
  clear(key: K): void {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i]!.key === key) this.entries.splice(i, 1);
  }

  /** Milliseconds until the oldest entry expires (for a 5.03's Max-Age). */
  msUntilSpace(): number {
    this.prune();
    return this.entries.length < this.capacity ? 0 : Math.max(0, this.entries[0]!.expires - this.now());
  }

  private prune(): void {
    const now = this.now();
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i]!.expires <= now) this.entries.splice(i, 1);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
