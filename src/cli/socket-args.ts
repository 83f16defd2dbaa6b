/**
 * Socket buffer flags shared by `serve` and `proxy`: --socket-buffer BYTES (both directions),
 * --recv-buffer BYTES and --send-buffer BYTES (one each, overriding --socket-buffer).
 *
 * Why they exist: Linux's default receive buffer (about 212 KB) holds only a few large datagrams;
 * five 63 KB datagrams fill it and the small requests behind them are dropped by the kernel before
 * CoAP sees them. The kernel caps what is asked at net.core.rmem_max / wmem_max.
 */
import type { SocketOptions } from '../transport/socket.js';
import { UsageError } from './errors.js';

export const SOCKET_FLAGS = {
  'socket-buffer': { type: 'string' },
  'recv-buffer': { type: 'string' },
  'send-buffer': { type: 'string' },
} as const;

export const SOCKET_USAGE = `  --socket-buffer BYTES  UDP receive and send buffer size (e.g. 4M; suffixes K, M = KiB, MiB);
                         the kernel caps it at net.core.rmem_max / wmem_max
  --recv-buffer BYTES    receive buffer only (overrides --socket-buffer)
  --send-buffer BYTES    send buffer only (overrides --socket-buffer)`;

/** A buffer smaller than one largest UDP datagram is a mistake, not a setting. */
const MIN_BUFFER = 65_536;
const MAX_BUFFER = 1 << 30;

/** The socket buffer sizes the flags ask for, as SocketOptions (empty when none is given). */
export function socketBuffers(values: { 'socket-buffer'?: string | undefined; 'recv-buffer'?: string | undefined; 'send-buffer'?: string | undefined }): Pick<SocketOptions, 'receiveBufferSize' | 'sendBufferSize'> {
  const both = parseBytes(values['socket-buffer'], '--socket-buffer');
  const receive = parseBytes(values['recv-buffer'], '--recv-buffer') ?? both;
  const send = parseBytes(values['send-buffer'], '--send-buffer') ?? both;
  return { ...(receive !== undefined ? { receiveBufferSize: receive } : {}), ...(send !== undefined ? { sendBufferSize: send } : {}) };
}

function parseBytes(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+)([kKmM]?)$/.exec(text.trim());
  const bytes = m ? Number(m[1]) * (/k/i.test(m[2]!) ? 1024 : /m/i.test(m[2]!) ? 1 << 20 : 1) : NaN;
  if (!(bytes >= MIN_BUFFER && bytes <= MAX_BUFFER)) {
    throw new UsageError(`${flag} needs a size in bytes from 64K to 1024M (e.g. 4M), got "${text}"`);
  }
  return bytes;
}
