/**
 * A strict CBOR layer over `cbor2` for COSE and EDHOC.
 *
 * Encoding is deterministic (RFC 8949 §4.2.1: preferred serialization, definite lengths, map keys
 * in bytewise lexicographic order), which is what EDHOC's transcript hashes and COSE's
 * Sig_structure/Enc_structure need to be reproducible.
 *
 * Decoding is for bytes from the network: non-preferred integer or length encodings, indefinite
 * lengths, duplicate map keys, floats, `undefined` and tags are all refused (RFC 9528 §3.1 and
 * RFC 9529 §4.3: EDHOC is deterministic CBOR only). Byte strings come back as plain Uint8Array
 * views, never Node Buffers: cbor2 encodes a Buffer as a tagged object, so a Buffer that slipped
 * back into an encoder would change the bytes of a hash input.
 */
import { decodeSequence, encode, getEncoded, Tag } from 'cbor2';

export class CborError extends Error {
  override readonly name = 'CborError';
}

/** What the strict decoder yields: no floats, tags or `undefined`. Maps are always Map. */
export type CborValue = number | bigint | string | boolean | null | Uint8Array | CborValue[] | Map<CborValue, CborValue>;

const STRICT_DECODE = {
  requirePreferred: true,
  rejectStreaming: true,
  rejectDuplicateKeys: true,
  rejectFloats: true,
  rejectUndefined: true,
  rejectSimple: true,
  rejectBigInts: true,
  preferMap: true,
  ignoreGlobalTags: true,
  saveOriginal: true,
  maxDepth: 16,
} as const;

/** Bytewise lexicographic order (RFC 8949 §4.2.1's key order); no Buffer, so the browser build can encode maps. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** A plain Uint8Array view of any byte array (a Buffer is a Uint8Array subclass that cbor2 tags). */
export const bytesView = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/**
 * The original encoding of each decoded map or array, kept so that a credential carried by value
 * (a CCS in 'kccs') is hashed with exactly the bytes that were sent.
 */
const originalEncodings = new WeakMap<object, Uint8Array>();

function normalize(value: unknown): CborValue {
  if (value instanceof Uint8Array) return bytesView(value);
  if (value instanceof Tag) throw new CborError(`CBOR tag ${String(value.tag)} not allowed here`);
  if (Array.isArray(value)) {
    const out = value.map(normalize);
    const raw = getEncoded(value);
    if (raw !== undefined) originalEncodings.set(out, bytesView(raw));
    return out;
  }
  if (value instanceof Map) {
    const out = new Map<CborValue, CborValue>();
    for (const [k, v] of value) out.set(normalize(k), normalize(v));
    const raw = getEncoded(value);
    if (raw !== undefined) originalEncodings.set(out, bytesView(raw));
    return out;
  }
  switch (typeof value) {
    case 'number':
      if (!Number.isInteger(value)) throw new CborError('floating-point values are not allowed');
      return value;
    case 'bigint':
    case 'string':
    case 'boolean':
      return value;
    default:
      if (value === null) return null;
      throw new CborError(`unsupported CBOR value of type ${typeof value}`);
  }
}

/**
 * Decodes a CBOR sequence (RFC 8742) strictly. Throws CborError on any malformed, truncated or
 * non-deterministic input.
 */
export function decodeSequenceStrict(bytes: Uint8Array): CborValue[] {
  const items: CborValue[] = [];
  try {
    for (const item of decodeSequence(bytesView(bytes), STRICT_DECODE)) items.push(normalize(item));
  } catch (e) {
    if (e instanceof CborError) throw e;
    throw new CborError(`invalid CBOR: ${(e as Error).message}`);
  }
  return items;
}

/** Decodes exactly one CBOR data item. */
export function decodeStrict(bytes: Uint8Array): CborValue {
  const items = decodeSequenceStrict(bytes);
  if (items.length !== 1) throw new CborError(`expected one CBOR data item, found ${items.length}`);
  return items[0]!;
}

/** The bytes a decoded map or array arrived as (deterministic re-encoding otherwise). */
export function originalEncoding(value: CborValue): Uint8Array {
  if (typeof value === 'object' && value !== null && !(value instanceof Uint8Array)) {
    const raw = originalEncodings.get(value);
    if (raw !== undefined) return raw;
  }
  return encodeCbor(value);
}

function prepare(value: unknown): unknown {
  if (value instanceof Uint8Array) return bytesView(value);
  if (Array.isArray(value)) return value.map(prepare);
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [prepare(k), prepare(v)]));
  return value;
}

/** cbor2's deterministic encoding, for the values the direct encoder below leaves to it. */
const encodeWithLibrary = (value: unknown): Uint8Array => bytesView(encode(prepare(value), { cde: true }));

/**
 * Deterministic encoding of one data item.
 *
 * The data model EDHOC and COSE build (integers, byte and text strings, booleans, null, arrays and
 * maps) is written directly; cbor2 costs about 40 µs per call however small the item (it sets up a
 * 4 KiB writer and its options each time), and an EDHOC handshake encodes some hundred items.
 * Anything else (tags, floats, bigints beyond 64 bits) goes to cbor2. The two agree byte for byte:
 * test/cose-cbor-encoding.test.ts compares them on random values.
 */
export function encodeCbor(value: unknown): Uint8Array {
  const writer = new DeterministicWriter();
  writer.item(value);
  return writer.result();
}

/** A CBOR sequence: the concatenation of each item's deterministic encoding. */
export const encodeSequence = (...items: unknown[]): Uint8Array => concatBytes(...items.map(encodeCbor));

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;
export const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
export const isMap = (v: unknown): v is Map<CborValue, CborValue> => v instanceof Map;

export const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
export const fromHex = (hex: string): Uint8Array => bytesView(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));

const MAX_UINT64 = (1n << 64n) - 1n;
const utf8 = new TextEncoder();

/** RFC 8949 §4.2.1 core deterministic encoding: preferred heads, definite lengths, sorted map keys. */
class DeterministicWriter {
  #buf = new Uint8Array(128);
  #length = 0;

  result(): Uint8Array {
    return this.#buf.slice(0, this.#length);
  }

  item(value: unknown): void {
    switch (typeof value) {
      case 'number':
        if (Number.isSafeInteger(value) && !Object.is(value, -0)) {
          if (value >= 0) this.#head(0, value);
          else this.#head(1, -1 - value);
          return;
        }
        break;
      case 'bigint':
        if (value >= 0n && value <= MAX_UINT64) return this.#head(0, value);
        if (value < 0n && -1n - value <= MAX_UINT64) return this.#head(1, -1n - value);
        break;
      case 'string': {
        const bytes = utf8.encode(value);
        this.#head(3, bytes.length);
        return this.#bytes(bytes);
      }
      case 'boolean':
        return this.#byte(value ? 0xf5 : 0xf4);
      case 'object':
        if (value === null) return this.#byte(0xf6);
        if (value instanceof Uint8Array) {
          this.#head(2, value.length);
          return this.#bytes(value);
        }
        if (Array.isArray(value)) {
          this.#head(4, value.length);
          for (const element of value) this.item(element);
          return;
        }
        if (value instanceof Map) return this.#map(value);
        break;
    }
    this.#bytes(encodeWithLibrary(value));
  }

  #map(map: Map<unknown, unknown>): void {
    const entries = [...map].map(([k, v]) => [encodeCbor(k), v] as const);
    entries.sort(([a], [b]) => compareBytes(a, b));
    this.#head(5, entries.length);
    for (const [key, v] of entries) {
      this.#bytes(key);
      this.item(v);
    }
  }

  #head(major: number, argument: number | bigint): void {
    const type = major << 5;
    if (argument < 24) return this.#byte(type | Number(argument));
    if (argument < 0x100) {
      this.#byte(type | 24);
      return this.#byte(Number(argument));
    }
    if (argument < 0x10000) {
      this.#reserve(3);
      this.#buf[this.#length++] = type | 25;
      this.#buf[this.#length++] = Number(argument) >>> 8;
      this.#buf[this.#length++] = Number(argument) & 0xff;
      return;
    }
    if (argument < 0x100000000) {
      this.#reserve(5);
      this.#buf[this.#length] = type | 26;
      new DataView(this.#buf.buffer).setUint32(this.#length + 1, Number(argument));
      this.#length += 5;
      return;
    }
    this.#reserve(9);
    this.#buf[this.#length] = type | 27;
    new DataView(this.#buf.buffer).setBigUint64(this.#length + 1, BigInt(argument));
    this.#length += 9;
  }

  #byte(b: number): void {
    this.#reserve(1);
    this.#buf[this.#length++] = b;
  }

  #bytes(b: Uint8Array): void {
    this.#reserve(b.length);
    this.#buf.set(b, this.#length);
    this.#length += b.length;
  }

  #reserve(n: number): void {
    if (this.#length + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#length + n));
    grown.set(this.#buf.subarray(0, this.#length));
    this.#buf = grown;
  }
}
