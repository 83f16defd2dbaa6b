/**
 * The stream listeners of `serve` and `proxy`: --tcp, --tls and --ws [HOST:]PORT (RFC 8323:
 * coap+tcp://, coaps+tcp://, coap+ws://), each besides the UDP listener of --bind.
 */
import type { StreamScheme } from '../transport/transport.js';
import { parseBind } from './args.js';
import { UsageError } from './errors.js';

export const STREAM_LISTEN_FLAGS = {
  tcp: { type: 'string' },
  tls: { type: 'string' },
  ws: { type: 'string' },
} as const;

export const STREAM_LISTEN_USAGE = `  --tcp [HOST:]PORT  also serve coap+tcp:// (RFC 8323) there (host: that of --bind)
  --tls [HOST:]PORT  also serve coaps+tcp:// there: TLS with --cert/--key (PEM; --ca makes client
                     certificates mandatory) or TLS-PSK with --psk-identity/--psk (TLS 1.2)
  --ws [HOST:]PORT   also serve coap+ws:// there (WebSocket endpoint /.well-known/coap)`;

export interface StreamListener {
  scheme: StreamScheme;
  host: string;
  port: number;
}

/** The listeners the flags ask for, in the order coap+tcp, coap+ws, coaps+tcp; a bare port takes the host of `bind`. */
export function streamListeners(values: { tcp?: string | undefined; tls?: string | undefined; ws?: string | undefined }, bind: { host: string; port: number }): StreamListener[] {
  const listen = (flag: string, text: string): { host: string; port: number } => {
    const b = parseBind(/^\d+$/.test(text) ? `${bind.host.includes(':') ? `[${bind.host}]` : bind.host}:${text}` : text, bind);
    if (b.port === 0 && !/:0$/.test(text) && text !== '0') throw new UsageError(`${flag} needs a port`);
    return b;
  };
  const listeners: StreamListener[] = [];
  if (values.tcp !== undefined) listeners.push({ ...listen('--tcp', values.tcp), scheme: 'coap+tcp' });
  if (values.ws !== undefined) listeners.push({ ...listen('--ws', values.ws), scheme: 'coap+ws' });
  if (values.tls !== undefined) listeners.push({ ...listen('--tls', values.tls), scheme: 'coaps+tcp' });
  return listeners;
}
