/**
 * Payloads for people: JSON indented, CBOR in diagnostic notation (RFC 8949 §8), link-format one
 * link per line (RFC 6690). And for machines: `--json` with a decoded field for JSON and CBOR.
 */
import { decode } from 'cbor2';
import { diagnose } from 'cbor2/diagnostic';
import { contentFormatName, ContentFormat } from '../coap/content-format.js';
import { parseLinkFormat, serializeLinks } from '../coap/link-format.js';

export type PayloadKind = 'json' | 'cbor' | 'link-format';

/** By the Content-Format's media type, structured-syntax suffixes included (RFC 6839, RFC 8949 §9.5). */
export function payloadKind(contentFormat: number | undefined): PayloadKind | undefined {
  if (contentFormat === undefined) return undefined;
  if (contentFormat === ContentFormat.LinkFormat) return 'link-format';
  const name = contentFormatName(contentFormat);
  if (name === undefined || name.includes('content-coding=')) return undefined;
  const subtype = name.split(';')[0]!.split('/')[1] ?? '';
  if (subtype === 'json' || subtype.endsWith('+json')) return 'json';
  if (subtype === 'cbor' || subtype.endsWith('+cbor')) return 'cbor';
  return undefined;
}

/** The payload pretty-printed, or undefined when it is not of a kind shown so or does not decode. */
export function prettyPayload(payload: Uint8Array, contentFormat: number | undefined): string | undefined {
  const kind = payloadKind(contentFormat);
  if (kind === undefined || payload.length === 0) return undefined;
  try {
    switch (kind) {
      case 'json':
        return JSON.stringify(JSON.parse(utf8(payload)), null, 2);
      case 'cbor':
        return diagnose(payload, { pretty: true }).trimEnd();
      case 'link-format':
        return parseLinkFormat(utf8(payload))
          .map((link) => serializeLinks([link]))
          .join(',\n');
    }
  } catch {
    return undefined;
  }
}

/**
 * For `--json`: the payload decoded when it is JSON or CBOR. CBOR values without a JSON form are
 * spelled out: byte strings {"bytes": hex}, tags {"tag": n, "value": v}, maps with non-string keys
 * as lists of [key, value] pairs, big integers as decimal strings.
 */
export function decodedPayload(payload: Uint8Array, contentFormat: number | undefined): { decoded: unknown; diagnostic?: string } | undefined {
  const kind = payloadKind(contentFormat);
  if (payload.length === 0) return undefined;
  try {
    if (kind === 'json') return { decoded: JSON.parse(utf8(payload)) as unknown };
    if (kind === 'cbor') return { decoded: jsonSafe(decode(payload)), diagnostic: diagnose(payload) };
  } catch {
    return undefined;
  }
  return undefined;
}

function utf8(bytes: Uint8Array): string {
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}

function jsonSafe(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (value instanceof Uint8Array) return { bytes: Buffer.from(value).toString('hex') };
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value instanceof Map) {
    const entries = [...value.entries()];
    if (entries.every(([k]) => typeof k === 'string')) return Object.fromEntries(entries.map(([k, v]) => [k, jsonSafe(v)]));
    return entries.map(([k, v]) => [jsonSafe(k), jsonSafe(v)]);
  }
  if (value !== null && typeof value === 'object') {
    const tagged = value as { tag?: unknown; contents?: unknown };
    if (typeof tagged.tag === 'number' || typeof tagged.tag === 'bigint') return { tag: jsonSafe(tagged.tag), value: jsonSafe(tagged.contents) };
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]));
  }
  return value;
}
