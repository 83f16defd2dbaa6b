/**
 * External Authorization Data (RFC 9528 §3.8): items (ead_label, ? ead_value). Label 0 is
 * padding (§3.8.1), dropped on receipt. A negative label is critical: one this endpoint does not
 * understand aborts the session with an error (§3.8).
 */
import { isBytes, isInt, type CborValue } from '../cose/cbor.js';
import { unspecified } from './errors.js';

export interface EadItem {
  readonly label: number;
  readonly value?: Uint8Array;
}

export const PADDING_LABEL = 0;

/** The CBOR items of an EAD field. */
export function eadToCbor(items: readonly EadItem[]): CborValue[] {
  const out: CborValue[] = [];
  for (const item of items) {
    if (!Number.isSafeInteger(item.label)) throw new RangeError('EAD label must be an integer');
    out.push(item.label);
    if (item.value !== undefined) out.push(item.value);
  }
  return out;
}

/** A padding item that adds `length` ≥ 1 bytes (§3.8.1); several items make longer padding easy to reason about. */
export function padding(length: number): EadItem[] {
  if (!Number.isInteger(length) || length < 1) throw new RangeError('padding length must be at least 1');
  if (length === 1) return [{ label: PADDING_LABEL }];
  // 0x00 then a bstr header: 1 byte for up to 23 bytes of content, 2 up to 255, 3 beyond.
  const overhead = (n: number): number => 1 + (n < 24 ? 1 : n < 256 ? 2 : 3);
  for (let content = length - 2; content >= 0; content -= 1) {
    if (content + overhead(content) === length) return [{ label: PADDING_LABEL, value: new Uint8Array(content) }];
  }
  return [{ label: PADDING_LABEL }, ...padding(length - 1)];
}

/**
 * The EAD items in `values` (what follows a message's fixed fields), without padding. Throws
 * EdhocError (code 1) for a malformed field or an unknown critical item.
 */
export function parseEad(values: readonly CborValue[], understoodLabels: ReadonlySet<number>, what: string): EadItem[] {
  const items: EadItem[] = [];
  for (let i = 0; i < values.length; ) {
    const label = values[i];
    if (!isInt(label)) throw unspecified(`${what}: an EAD item must start with an integer label`);
    const next = values[i + 1];
    const value = isBytes(next) ? next : undefined;
    i += value === undefined ? 1 : 2;
    if (label === PADDING_LABEL) continue;
    if (label < 0 && !understoodLabels.has(-label)) throw unspecified(`${what}: unsupported critical EAD item ${label}`);
    items.push(value === undefined ? { label } : { label, value });
  }
  return items;
}
