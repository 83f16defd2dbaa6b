/** How responses are shown: payload on stdout, details on stderr, or JSON lines. */
import { codeToDotted, codeToString } from '../coap/codes.js';
import { contentFormatName, isTextual } from '../coap/content-format.js';
import { decodeString, decodeUint, type CoapMessage, type CoapOption } from '../coap/message.js';
import { OptionNumber, optionDefinition, optionName } from '../coap/options.js';
import { decodeBlock, formatBlock } from '../coap/block.js';
import type { ClientResponse } from '../client/client.js';
import { decodedPayload } from './present.js';

export function optionValueToText(o: CoapOption): string | number {
  const d = optionDefinition(o.number);
  switch (d?.format) {
    case 'uint':
      return decodeUint(o.value);
    case 'string':
      return decodeString(o.value);
    case 'empty':
      return '';
    default:
      return o.value.length === 0 ? '(empty)' : '0x' + Buffer.from(o.value).toString('hex');
  }
}

export function describeOption(o: CoapOption): string {
  const value = optionValueToText(o);
  if (o.number === OptionNumber.Block1 || o.number === OptionNumber.Block2) {
    try {
      return `${optionName(o.number)}: ${formatBlock(decodeBlock(o.value))}`;
    } catch {
      return `${optionName(o.number)}: invalid (0x${Buffer.from(o.value).toString('hex')})`;
    }
  }
  if (o.number === OptionNumber.ContentFormat || o.number === OptionNumber.Accept) {
    const name = contentFormatName(value as number);
    return `${optionName(o.number)}: ${value}${name ? ` (${name})` : ''}`;
  }
  return `${optionName(o.number)}: ${value}`;
}

/** -v: the protected message as received, then (by the caller) the decrypted one. */
export function describeWire(wire: CoapMessage): string[] {
  const lines = [`protected: ${codeToString(wire.code)}, ${wire.payload.length}-byte ciphertext`];
  for (const o of wire.options) lines.push(`  ${describeOption(o)}`);
  lines.push('decrypted:');
  return lines;
}

/**
 * `--json`: the payload is always "payload" — text when it is UTF-8 text, else base64 with
 * "payloadEncoding": "base64" — and "decoded" (plus CBOR's "diagnostic") when it is JSON or CBOR.
 */
export function responseToJson(response: Pick<ClientResponse, 'code' | 'options' | 'payload' | 'contentFormat' | 'text'>): Record<string, unknown> {
  const textual = (response.contentFormat === undefined || isTextual(response.contentFormat)) && isUtf8(response.payload);
  return {
    code: codeToDotted(response.code),
    status: codeToString(response.code).slice(5) || codeToDotted(response.code),
    options: response.options.map((o) => ({ number: o.number, name: optionName(o.number), value: optionValueToText(o) })),
    ...(textual ? { payload: response.text() } : { payload: Buffer.from(response.payload).toString('base64'), payloadEncoding: 'base64' }),
    ...decodedPayload(response.payload, response.contentFormat),
  };
}

export function isUtf8(bytes: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** -v: the code and options on stderr (preceded by the protected message when OSCORE unwrapped it). */
export function printVerbose(response: Pick<ClientResponse, 'code' | 'options' | 'wire'>): void {
  if (response.wire) for (const line of describeWire(response.wire)) process.stderr.write(`${line}\n`);
  process.stderr.write(`${codeToString(response.code)}\n`);
  for (const o of response.options) process.stderr.write(`  ${describeOption(o)}\n`);
}
