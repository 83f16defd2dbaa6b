/**
 * The client flags libcoap's coap-client and aiocoap-client users expect:
 *   -O, --option NUM,VALUE   any option, by number or name (If-Match, No-Response, Uri-Host, ...)
 *   --token HEX              the request token instead of a random one
 *   --hop-limit N            Hop-Limit (RFC 8768)
 *   --local ADDR:PORT        the local address and port to send from
 */
import { encodeString, encodeUint, type CoapOption } from '../coap/message.js';
import { OptionNumber, hasValidLength, optionByName, optionDefinition, optionName } from '../coap/options.js';
import { parseBind } from './args.js';
import { UsageError } from './errors.js';
import { parseKeyBytes } from '../util/key-text.js';

export const REQUEST_OPTION_FLAGS = {
  option: { type: 'string', short: 'O', multiple: true },
  token: { type: 'string' },
  'hop-limit': { type: 'string' },
  local: { type: 'string' },
} as const;

export const REQUEST_OPTION_USAGE = `  -O, --option NUM,VALUE  add an option (number or name, e.g. If-Match, No-Response, Uri-Host);
                          VALUE: 0x-hex bytes, else a number for uint options, text otherwise; repeatable
  --token HEX             the request token (0 to 8 bytes of hex), instead of a random one
  --hop-limit N           Hop-Limit option, 1..255 (RFC 8768)
  --local ADDR:PORT       send from this local address and port`;

export interface RequestOptionValues {
  option?: string[] | undefined;
  token?: string | undefined;
  'hop-limit'?: string | undefined;
  local?: string | undefined;
}

/**
 * `-O NUM,VALUE`: the value as its option's format says (RFC 7252 §3.2): uint as a decimal number,
 * string as UTF-8 text, empty as nothing, opaque as text; "0x…" is raw bytes for any format.
 */
export function parseOptionArgument(text: string): CoapOption {
  const comma = text.indexOf(',');
  const key = (comma < 0 ? text : text.slice(0, comma)).trim();
  const valueText = comma < 0 ? '' : text.slice(comma + 1);
  const number = /^\d+$/.test(key) ? Number(key) : optionByName(key)?.number;
  if (number === undefined || number > 65535) throw new UsageError(`-O ${text}: "${key}" is no option number (0..65535) or known option name`);
  const definition = optionDefinition(number);
  let value: Uint8Array;
  if (/^0x/i.test(valueText)) value = hexBytes(`-O ${text}`, valueText, true);
  else if (definition?.format === 'uint') {
    if (!/^\d+$/.test(valueText) || Number(valueText) > 0xffffffff) throw new UsageError(`-O ${text}: ${definition.name} takes a number 0..4294967295 (or 0x-hex)`);
    value = encodeUint(Number(valueText));
  } else if (definition?.format === 'empty') {
    if (valueText !== '') throw new UsageError(`-O ${text}: ${definition.name} takes no value`);
    value = new Uint8Array(0);
  } else value = encodeString(valueText);
  if (definition && !hasValidLength(number, value.length)) throw new UsageError(`-O ${text}: a ${value.length}-byte value is outside ${optionName(number)}'s length range`);
  return { number, value };
}

function hexBytes(flag: string, text: string, allowEmpty: boolean): Uint8Array {
  if (allowEmpty && /^(0x)?$/i.test(text)) return new Uint8Array(0);
  try {
    return parseKeyBytes(/^0x/i.test(text) ? text : `0x${text}`);
  } catch (error) {
    throw new UsageError(`${flag}: ${(error as Error).message}`);
  }
}

export interface RequestOptionSettings {
  options: CoapOption[];
  token: Uint8Array | undefined;
  local: { host: string; port: number } | undefined;
}

export function requestOptionSettings(values: RequestOptionValues): RequestOptionSettings {
  const options = (values.option ?? []).map(parseOptionArgument);
  if (values['hop-limit'] !== undefined) {
    const n = Number(values['hop-limit']);
    // RFC 8768 §3: the value 0 is not allowed in a request.
    if (!Number.isInteger(n) || n < 1 || n > 255) throw new UsageError(`--hop-limit needs a number 1..255, got "${values['hop-limit']}"`);
    options.push({ number: OptionNumber.HopLimit, value: encodeUint(n) });
  }
  let token: Uint8Array | undefined;
  if (values.token !== undefined) {
    token = hexBytes('--token', values.token, true);
    if (token.length > 8) throw new UsageError(`--token: at most 8 bytes, got ${token.length}`);
  }
  let local: { host: string; port: number } | undefined;
  if (values.local !== undefined) {
    try {
      local = parseBind(values.local, { host: '', port: 0 });
    } catch (error) {
      throw new UsageError((error as Error).message.replace('--bind', '--local'));
    }
  }
  return { options, token, local };
}

/** CoapClient options for --local: the address goes to the family it belongs to. */
export function localBinding(local: RequestOptionSettings['local']): { bindIpv4?: string; bindIpv6?: string; localPort?: number } {
  if (!local) return {};
  const port = local.port !== 0 ? { localPort: local.port } : {};
  if (local.host === '') return port;
  return local.host.includes(':') ? { bindIpv6: local.host, ...port } : { bindIpv4: local.host, ...port };
}
