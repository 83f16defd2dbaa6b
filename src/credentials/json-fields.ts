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

  constructor(readonly file: string) {}

  bytes(json: unknown, path: string): Uint8Array {
    if (typeof json === 'string') return this.hex(json, path);
    if (json !== null && typeof json === 'object' && !Array.isArray(json)) {
      const keys = Object.keys(json);
      const form = json as JsonObject;
      if (keys.length === 1 && typeof form.hex === 'string') return this.hex(form.hex, `${path}.hex`);
      if (keys.length === 1 && typeof form.ascii === 'string') {
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
    try {
      return parseFileKeyString(text);
    } catch (error) {
      return this.fail(path, (error as Error).message);
    }
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
      for (const key of Object.keys(json)) {
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
