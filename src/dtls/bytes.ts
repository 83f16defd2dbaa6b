/**
 * Minimal big-endian reader/writer helpers for TLS/DTLS wire structures (RFC 5246 §4 presentation
 * language: uint8/16/24/48 and length-prefixed vectors). The reader throws {@link DecodeError} on
 * truncated or over-long input; callers convert that into a decode_error alert or a silent drop.
 */

export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

export class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) throw new DecodeError('truncated input');
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u24(): number {
    this.need(3);
    const v = this.buf.readUIntBE(this.pos, 3);
    this.pos += 3;
    return v;
  }

  u48(): number {
    this.need(6);
    const v = this.buf.readUIntBE(this.pos, 6);
    this.pos += 6;
    return v;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** Length-prefixed vector with bounds `<min..max>` and a 1/2/3-byte length. */
  vec(lenBytes: 1 | 2 | 3, min = 0, max = Number.MAX_SAFE_INTEGER): Buffer {
    const n = lenBytes === 1 ? this.u8() : lenBytes === 2 ? this.u16() : this.u24();
    if (n < min || n > max) throw new DecodeError(`vector length ${n} outside <${min}..${max}>`);
    return this.bytes(n);
  }

  rest(): Buffer {
    const v = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return v;
  }

  end(): void {
    if (this.pos !== this.buf.length) throw new DecodeError('trailing bytes');
  }
}

export function u8(n: number): Buffer {
  return Buffer.from([n & 0xff]);
}

export function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

export function u24(n: number): Buffer {
  const b = Buffer.alloc(3);
  b.writeUIntBE(n, 0, 3);
  return b;
}

export function u48(n: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
}

export function vec(lenBytes: 1 | 2 | 3, data: Uint8Array): Buffer {
  const max = lenBytes === 1 ? 0xff : lenBytes === 2 ? 0xffff : 0xffffff;
  if (data.length > max) throw new RangeError(`vector too long (${data.length} > ${max})`);
  const len = lenBytes === 1 ? u8(data.length) : lenBytes === 2 ? u16(data.length) : u24(data.length);
  return Buffer.concat([len, data]);
}

/** `data` from `start` on as a Buffer, without copying (a Buffer already is one). */
export function bufferView(data: Uint8Array, start = 0): Buffer {
  return Buffer.isBuffer(data) ? (start === 0 ? data : data.subarray(start)) : Buffer.from(data.buffer, data.byteOffset + start, data.byteLength - start);
}
