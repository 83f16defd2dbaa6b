/**
 * RFC 8323 message framing, sans-IO. Over TCP and TLS (§3.2) a message is
 *   Len/TKL byte, Extended Length (0, 1, 2 or 4 bytes, chosen by Len), Code, Token, Options, Payload
 * where the length counts from the first option byte to the end of the payload (payload marker
 * included). Over WebSockets (§4.2) the WebSocket message delimits the CoAP message, so Len is 0
 * and there is no Extended Length. Neither framing has a version, type or Message ID: the
 * decoded CoapMessage carries type CON and Message ID 0, which nothing above a stream carrier reads.
 *
 * The options/payload part is the same as in RFC 7252 §3, so the datagram codec encodes and
 * validates it; this module only adds and removes the stream header.
 */
import { MessageFormatError, decodeMessage, encodeMessage } from '../coap/codec.js';
import { MessageType, type CoapMessage } from '../coap/message.js';
import { allocBytes, joinBytes } from '../util/bytes.js';

export type Framing = 'length' | 'websocket';

/** §3.2: Len 13, 14 and 15 subtract these before storing the length in 1, 2 or 4 bytes. */
const LEN_8_OFFSET = 13;
const LEN_16_OFFSET = 269;
const LEN_32_OFFSET = 65805;

/** The whole size of an encoded message as Max-Message-Size counts it (§5.3.1: header to payload end). */
export function frameSize(bodyLength: number, tokenLength: number, framing: Framing): number {
  return 1 + extendedLengthBytes(framing === 'length' ? bodyLength : 0) + 1 + tokenLength + bodyLength;
}

function extendedLengthBytes(length: number): number {
  return length < LEN_8_OFFSET ? 0 : length < LEN_16_OFFSET ? 1 : length < LEN_32_OFFSET ? 2 : 4;
}

/** Encodes one message for a stream carrier. Type and Message ID are not sent (§3.2). */
/** A Buffer in Node, a Uint8Array in the browser build (as encodeMessage). */
export function encodeFrame(message: CoapMessage, framing: Framing): Buffer {
  const datagram = encodeMessage(message);
  const tokenLength = message.token.length;
  const body = datagram.subarray(4 + tokenLength);
  const length = framing === 'length' ? body.length : 0;
  const extended = extendedLengthBytes(length);
  const out = allocBytes(1 + extended + 1 + tokenLength + body.length);
  let pos = 1;
  if (extended === 0) out[0] = (length << 4) | tokenLength;
  else if (extended === 1) {
    out[0] = (13 << 4) | tokenLength;
    out[pos++] = length - LEN_8_OFFSET;
  } else if (extended === 2) {
    out[0] = (14 << 4) | tokenLength;
    const value = length - LEN_16_OFFSET;
    out[pos++] = value >> 8;
    out[pos++] = value & 0xff;
  } else {
    out[0] = (15 << 4) | tokenLength;
    const value = length - LEN_32_OFFSET;
    out[pos++] = value >>> 24;
    out[pos++] = (value >>> 16) & 0xff;
    out[pos++] = (value >>> 8) & 0xff;
    out[pos++] = value & 0xff;
  }
  out[pos++] = message.code;
  out.set(datagram.subarray(4), pos);
  return out as Buffer;
}

/**
 * Decodes the part after the stream header (Code, Token, Options, Payload) by handing it to the
 * RFC 7252 decoder behind a synthetic datagram header, so both carriers reject the same format errors.
 */
function decodeBody(tokenLength: number, code: number, rest: Uint8Array): CoapMessage {
  if (tokenLength > 8) throw new MessageFormatError(`reserved token length ${tokenLength}`, 'format');
  if (code === 0 && rest.length !== 0) {
    // RFC 7252 §4.1 as RFC 8323 §3.4 keeps it: an Empty message is the bare header.
    throw new MessageFormatError('empty message with token, options or payload', 'format');
  }
  const datagram = allocBytes(4 + rest.length);
  datagram[0] = 0x40 | tokenLength;
  datagram[1] = code;
  datagram[2] = 0;
  datagram[3] = 0;
  datagram.set(rest, 4);
  const message = decodeMessage(datagram);
  message.type = MessageType.CON;
  return message;
}

/** Decodes one WebSocket message (§4.2): Len must be 0. */
export function decodeWebSocketFrame(data: Uint8Array): CoapMessage {
  if (data.length < 2) throw new MessageFormatError('WebSocket message shorter than the 2-byte CoAP header', 'format');
  if (data[0]! >> 4 !== 0) throw new MessageFormatError('Len is not 0 in a CoAP-over-WebSockets message (RFC 8323 §4.2)', 'format');
  return decodeBody(data[0]! & 0x0f, data[1]!, data.subarray(2));
}

/**
 * Reassembles length-framed messages (§3.2) from a TCP byte stream. Bounded: a frame announcing
 * more than `maxMessageSize` bytes is a format error before any of it is buffered, so a peer
 * cannot make us hold more than one message of our own advertised size.
 */
export class FrameDecoder {
  private buffered: Uint8Array[] = [];
  private bufferedLength = 0;

  constructor(private readonly maxMessageSize: number) {}

  /** Appends bytes and returns every message completed by them. Throws MessageFormatError on a bad frame. */
  push(data: Uint8Array): CoapMessage[] {
    this.buffered.push(data);
    this.bufferedLength += data.byteLength;
    const messages: CoapMessage[] = [];
    for (;;) {
      const message = this.next();
      if (message === undefined) return messages;
      messages.push(message);
    }
  }

  /** Bytes held for an incomplete frame. */
  get pending(): number {
    return this.bufferedLength;
  }

  private next(): CoapMessage | undefined {
    if (this.bufferedLength === 0) return undefined;
    const head = this.peek(Math.min(this.bufferedLength, 6));
    const lenNibble = head[0]! >> 4;
    const tokenLength = head[0]! & 0x0f;
    const extended = lenNibble < 13 ? 0 : lenNibble === 13 ? 1 : lenNibble === 14 ? 2 : 4;
    if (head.length < 1 + extended) return undefined;
    let length: number;
    if (extended === 0) length = lenNibble;
    else if (extended === 1) length = head[1]! + LEN_8_OFFSET;
    else if (extended === 2) length = ((head[1]! << 8) | head[2]!) + LEN_16_OFFSET;
    else length = (head[1]! * 0x1000000 + ((head[2]! << 16) | (head[3]! << 8) | head[4]!)) + LEN_32_OFFSET;
    if (tokenLength > 8) throw new MessageFormatError(`reserved token length ${tokenLength}`, 'format');
    const total = 1 + extended + 1 + tokenLength + length;
    if (total > this.maxMessageSize) {
      throw new MessageFormatError(`message of ${total} bytes exceeds the Max-Message-Size of ${this.maxMessageSize}`, 'format');
    }
    if (this.bufferedLength < total) return undefined;
    const frame = this.take(total);
    return decodeBody(tokenLength, frame[1 + extended]!, frame.subarray(2 + extended));
  }

  /** The first `n` buffered bytes (n ≤ bufferedLength), joining chunks only as far as needed. */
  private peek(n: number): Uint8Array {
    const first = this.buffered[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return joinBytes(this.buffered, this.bufferedLength).subarray(0, n);
  }

  private take(n: number): Uint8Array {
    const joined = this.buffered.length === 1 ? this.buffered[0]! : joinBytes(this.buffered, this.bufferedLength);
    const frame = joined.subarray(0, n);
    const rest = joined.subarray(n);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.bufferedLength = rest.length;
    return frame;
  }
}
