/**
 * Logging for serve, proxy and trust-anchor, on stderr:
 *   -v                 one line per request: peer, identity, protection, method, path, code
 *   -vv                also the request and response messages
 *   always             refused DTLS handshakes and OSCORE refusals, with their reason
 *   --log-format json  one JSON object per line instead of text
 * Never key material: messages are shown as the server processed them (inside OSCORE), with
 * option values and payload sizes, not payload bytes.
 */
import { codeToDotted, isRequestCode, methodName } from '../coap/codes.js';
import { getStringOptions, MessageType, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { CoapServer, RequestLogEntry } from '../server/server.js';
import { isStreamTransport, peerKey } from '../transport/transport.js';
import { UsageError } from './errors.js';
import { describeOption, optionValueToText } from './output.js';
import { optionName } from '../coap/options.js';

export const LOG_FLAGS = {
  verbose: { type: 'boolean', short: 'v', multiple: true },
  'log-format': { type: 'string' },
} as const;

export const LOG_USAGE = `  -v, --verbose           log one line per request (peer, identity, protection, code); -vv: also the messages
                          (refused DTLS handshakes and OSCORE failures are logged always, with the reason)
  --log-format text|json  log lines as text (default) or one JSON object per line`;

export interface LogFlagValues {
  verbose?: boolean[] | undefined;
  'log-format'?: string | undefined;
}

export interface ServerLog {
  /** Logs the requests of this server and its refused DTLS handshakes. */
  attach(server: CoapServer): void;
  /** Any other event worth a line (e.g. a trust-anchor decision), with its fields. */
  event(event: string, message: string, fields?: Record<string, unknown>): void;
  readonly level: number;
}

type Fields = Record<string, unknown>;

export function serverLog(values: LogFlagValues, stream: NodeJS.WritableStream = process.stderr): ServerLog {
  const format = values['log-format'] ?? 'text';
  if (format !== 'text' && format !== 'json') throw new UsageError(`--log-format must be text or json, got "${format}"`);
  const level = values.verbose?.length ?? 0;
  const emit = (event: string, text: string, fields: Fields, details: string[] = []): void => {
    const time = new Date().toISOString();
    if (format === 'json') stream.write(JSON.stringify({ time, event, ...fields }) + '\n');
    else stream.write(`${time} ${text}\n${details.map((d) => `  ${d}\n`).join('')}`);
  };
  const request = (entry: RequestLogEntry): void => {
    if (level === 0 && entry.oscoreFailure === undefined) return;
    const method = codeName(entry.request.code);
    const path = '/' + getStringOptions(entry.request, OptionNumber.UriPath).join('/');
    const code = codeToDotted(entry.response.code);
    const fields: Fields = {
      peer: entry.peer,
      identity: entry.identity ?? null,
      protection: entry.protection,
      method,
      path,
      code,
      ...(entry.oscoreFailure !== undefined ? { oscoreFailure: entry.oscoreFailure } : {}),
      ...(level >= 2 ? { request: messageFields(entry.request, true), response: messageFields(entry.response, false) } : {}),
    };
    const failure = entry.oscoreFailure !== undefined ? ` OSCORE refused: ${entry.oscoreFailure}` : '';
    const text = `${entry.peer} ${entry.identity ?? '-'} ${entry.protection} ${method} ${path} ${code}${failure}`;
    emit(entry.oscoreFailure !== undefined ? 'oscore-refused' : 'request', text, fields, level >= 2 ? [`request:  ${messageText(entry.request, true)}`, `response: ${messageText(entry.response, false)}`] : []);
  };
  return {
    level,
    attach(server) {
      server.onRequestLog = request;
      const transport = server.endpoint.transport;
      if (!isStreamTransport(transport)) transport.setSessionErrorHandler?.((peer, error) => {
        const alert = (error as { alert?: unknown }).alert;
        emit('dtls-refused', `${peerKey(peer)} DTLS handshake refused: ${error.message}`, { peer: peerKey(peer), reason: error.message, ...(typeof alert === 'string' ? { alert } : {}) });
      });
    },
    event(event, message, fields = {}) {
      emit(event, message, { message, ...fields });
    },
  };
}

const codeName = (code: number): string => (isRequestCode(code) ? methodName(code) : codeToDotted(code));

const TYPE_NAMES: Record<number, string> = { [MessageType.CON]: 'CON', [MessageType.NON]: 'NON', [MessageType.ACK]: 'ACK', [MessageType.RST]: 'RST' };

/** The response is logged before the exchange gives it its type and Message ID: those are left out. */
function messageFields(m: CoapMessage, isRequest: boolean): Fields {
  return {
    ...(isRequest ? { type: TYPE_NAMES[m.type] ?? m.type, messageId: m.messageId } : {}),
    code: codeName(m.code),
    token: Buffer.from(m.token).toString('hex'),
    options: m.options.map((o) => ({ number: o.number, name: optionName(o.number), value: optionValueToText(o) })),
    payloadBytes: m.payload.length,
  };
}

function messageText(m: CoapMessage, isRequest: boolean): string {
  const options = m.options.map((o) => describeOption(o)).join('; ');
  return `${isRequest ? `${TYPE_NAMES[m.type] ?? m.type} mid=${m.messageId} ` : ''}${codeName(m.code)} token=${Buffer.from(m.token).toString('hex') || '-'}${options ? ` ${options}` : ''}; ${m.payload.length}-byte payload`;
}
