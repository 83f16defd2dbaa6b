/**
 * The one rule for key material typed by a user, in every flag and file (--psk, --trust-anchor,
 * credentials.json, trust-anchor config and credential files; docs/credentials.md "Bytes"):
 *   - "0x…" is hex, everywhere;
 *   - in a JSON file a string is hex, with or without "0x"; {"hex": …} and {"ascii": …} are explicit;
 *   - on the command line a value without "0x" is its UTF-8 text (as libcoap's -k).
 * Messages name positions and lengths only, never the text: it may be a secret.
 */
export class KeyTextError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyTextError';
  }
}

/** Hex digits, "0x" optional (either case, even count, no separators). */
export function parseHexDigits(text: string): Uint8Array {
  const digits = /^0x/i.test(text) ? text.slice(2) : text;
  const offset = text.length - digits.length;
  if (digits.length % 2 !== 0) throw new KeyTextError(`hex value has an odd number of digits (${digits.length})`);
  const bad = digits.search(/[^0-9a-fA-F]/);
  if (bad >= 0) throw new KeyTextError(`hex value has a non-hex character at position ${bad + 1 + offset}`);
  return new Uint8Array(Buffer.from(digits, 'hex'));
}

/** A key in a JSON file given as a string: hex, "0x" optional. */
export const parseFileKeyString = parseHexDigits;

/** "0x…" hex required (a value that must not be mistaken for text). */
export function parseKeyBytes(text: string): Uint8Array {
  if (!/^0x/i.test(text)) throw new KeyTextError('expected 0x-prefixed hex');
  const bytes = parseHexDigits(text);
  if (bytes.length === 0) throw new KeyTextError('empty hex value');
  return bytes;
}

/** A key on the command line: "0x…" as hex, anything else as its UTF-8 text; never empty. */
export function parseFlagKey(text: string): Uint8Array {
  const bytes = /^0x/i.test(text) ? parseHexDigits(text) : new Uint8Array(Buffer.from(text, 'utf8'));
  if (bytes.length === 0) throw new KeyTextError('must not be empty');
  return bytes;
}
