/**
 * Typed readers for the fields of a JSON credentials file. Each failure is a CredentialsError that
 * names the file and the JSON path of the field — never the value, which may be a secret.
 */
import { CredentialsError } from './errors.js';
import { parseFileKeyString } from '../util/key-text.js';
import { aeadAlgorithmId, describeKnownAeadAlgorithms, describeKnownHkdfAlgorithms, hkdfAlgorithmId } from './oscore-params.js';

export type JsonObject = Record<string, unknown>;

export class JsonFields {
  /** Things that were read but not applied, or that deserve a look (a key file others can read). */
  readonly warnings: string[] = [];

  /**
   * Decoded hex values are views into one shared chunk (a few KiB) rather than a Uint8Array with an
   * ArrayBuffer of its own each: a file of 100,000 recipients holds 400,000 such values, and their
   * backing stores were much of its load time (issue 21).
   */
  #chunk = new Uint8Array(0);
  #chunkUsed = 0;

  constructor(readonly file: string) {}

  bytes(json: unknown, path: string): Uint8Array {
    if (typeof json === 'string') return this.hex(json, path);
    if (json !== null && typeof json === 'object' && !Array.isArray(json)) {
      const form = json as JsonObject;
      const single = hasOneField(form);
      if (single && typeof form.hex === 'string') return this.hex(form.hex, `${path}.hex`);
      if (single && typeof form.ascii === 'string') {
        const text = form.ascii;
        for (let i = 0; i < text.length; i++) {
          if (text.charCodeAt(i) > 0x7e) this.fail(`${path}.ascii`, `has a non-ASCII character at position ${i + 1}`);
        }
        return new Uint8Array(Buffer.from(text, 'latin1'));
      }
    }
    return this.fail(path, 'expected bytes: a hex string, {"hex": "..."} or {"ascii": "..."}');
  }

  /** A string of key bytes: hex, "0x" optional (the rule of every key flag and file, util/key-text.ts). */
  hex(text: string, path: string): Uint8Array {
    const plain = this.plainHex(text);
    if (plain !== undefined) return plain;
    try {
      return parseFileKeyString(text);
    } catch (error) {
      return this.fail(path, (error as Error).message);
    }
  }

  /** Even-length hex digits without "0x", decoded into the chunk; undefined for anything else (parseFileKeyString then decides). */
  plainHex(text: string): Uint8Array | undefined {
    const length = text.length >> 1;
    if ((text.length & 1) !== 0 || length > CHUNK_BYTES) return undefined;
    if (this.#chunkUsed + length > this.#chunk.length) {
      // Chunks grow from small: a reader that decodes a few values (one context from a store, of
      // which a node may hold 100,000) must not pin 16 KiB behind each.
      this.#chunk = new Uint8Array(Math.min(CHUNK_BYTES, Math.max(FIRST_CHUNK_BYTES, length, 2 * this.#chunk.length)));
      this.#chunkUsed = 0;
    }
    const chunk = this.#chunk;
    const at = this.#chunkUsed;
    for (let i = 0; i < length; i++) {
      const high = hexDigit(text.charCodeAt(2 * i));
      const low = hexDigit(text.charCodeAt(2 * i + 1));
      if ((high | low) < 0) return undefined;
      chunk[at + i] = (high << 4) | low;
    }
    this.#chunkUsed = at + length;
    return chunk.subarray(at, at + length);
  }

  algorithm(json: unknown, path: string, kind: 'aead' | 'hkdf'): number {
    if (typeof json !== 'string' && typeof json !== 'number') this.fail(path, 'expected an algorithm name or COSE id');
    const id = kind === 'aead' ? aeadAlgorithmId(json as string | number) : hkdfAlgorithmId(json as string | number);
    if (id === undefined) {
      const known = kind === 'aead' ? describeKnownAeadAlgorithms() : describeKnownHkdfAlgorithms();
      this.fail(path, `unknown ${kind === 'aead' ? 'AEAD' : 'HKDF'} algorithm ${JSON.stringify(json)}; known: ${known}`);
    }
    return id!;
  }

  integer(json: unknown, path: string): number {
    return typeof json === 'number' && Number.isSafeInteger(json) ? json : this.fail(path, 'expected an integer');
  }

  boolean(json: unknown, path: string): boolean {
    return typeof json === 'boolean' ? json : this.fail(path, 'expected true or false');
  }

  string(json: unknown, path: string): string {
    return typeof json === 'string' ? json : this.fail(path, 'expected a string');
  }

  array(json: unknown, path: string): unknown[] {
    return Array.isArray(json) ? json : this.fail(path, 'expected an array');
  }

  object(json: unknown, path: string, allowedFields?: readonly string[]): JsonObject {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) return this.fail(path, 'expected an object');
    if (allowedFields) {
      // for-in, not Object.keys: no array per object (a credentials file may hold 100,000 recipients).
      for (const key in json) {
        if (!allowedFields.includes(key)) {
          const prefix = path === '(top level)' ? '' : `${path}.`;
          this.fail(`${prefix}${key}`, `unknown field; expected one of ${allowedFields.filter((f) => f !== '$comment').join(', ')}`);
        }
      }
    }
    return json as JsonObject;
  }

  fail(path: string, message: string): never {
    throw new CredentialsError(`${this.file}: ${path}: ${message}`, this.file, undefined, path);
  }
}

const CHUNK_BYTES = 16384;
const FIRST_CHUNK_BYTES = 64;

/** Exactly one own field (a parsed JSON object has no inherited enumerable ones). */
function hasOneField(object: JsonObject): boolean {
  let count = 0;
  for (const _field in object) if (++count > 1) return false;
  return count === 1;
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}
