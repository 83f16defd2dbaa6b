/**
 * Byte-array helpers that run in Node and in a browser alike (the browser build, src/browser/,
 * has no `Buffer`). In Node they keep Buffer's fast paths: `allocUnsafe` hands out slices of a
 * shared pool for small sizes without zero-filling, cheaper than a Uint8Array with an
 * ArrayBuffer of its own on the per-message path.
 */
interface NodeBufferApi {
  allocUnsafe(size: number): Uint8Array;
  from(bytes: Uint8Array): Uint8Array;
  concat(list: readonly Uint8Array[], totalLength: number): Uint8Array;
}

const nodeBuffer = (globalThis as { Buffer?: NodeBufferApi }).Buffer;

/** `size` bytes whose content the caller overwrites entirely (not zero-filled in Node). */
export const allocBytes: (size: number) => Uint8Array = nodeBuffer ? (size) => nodeBuffer.allocUnsafe(size) : (size) => new Uint8Array(size);

/** A copy of the bytes (a Buffer in Node). */
export const copyBytes: (bytes: Uint8Array) => Uint8Array = nodeBuffer ? (bytes) => nodeBuffer.from(bytes) : (bytes) => bytes.slice();

/** The chunks back to back in a new array (`totalLength` is their summed length). */
export const joinBytes: (chunks: readonly Uint8Array[], totalLength: number) => Uint8Array = nodeBuffer
  ? (chunks, totalLength) => nodeBuffer.concat(chunks, totalLength)
  : (chunks, totalLength) => {
      const out = new Uint8Array(totalLength);
      let at = 0;
      for (const chunk of chunks) {
        out.set(chunk, at);
        at += chunk.length;
      }
      return out;
    };

/** Lower-case hex digits of the bytes. */
export function bytesToHex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += (bytes[i]! < 16 ? '0' : '') + bytes[i]!.toString(16);
  return out;
}

/** One character per byte (ISO-8859-1): a compact Map key for short byte strings such as tokens. */
export function bytesToLatin1(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += String.fromCharCode(bytes[i]!);
  return out;
}

/** The bytes of an even number of hex digits (whitespace ignored), or undefined when it is not one. */
export function hexToBytes(text: string): Uint8Array | undefined {
  const digits = text.replace(/\s+/g, '');
  if (digits.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(digits)) return undefined;
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}
