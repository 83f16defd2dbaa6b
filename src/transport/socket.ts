/**
 * The dgram socket under both transports (udp.ts, dtls.ts): binding it, sending to IP literals
 * without a DNS round, and closing it without losing the datagrams written just before.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import { isIP } from 'node:net';

export interface SocketOptions {
  /** Address to bind; '::' listens on IPv6 and IPv4 where the OS allows it. Default '127.0.0.1'. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Socket buffer sizes in bytes, raised for high request rates. */
  receiveBufferSize?: number;
  sendBufferSize?: number;
}

/** A bound UDP socket (udp6 for an IPv6 host) that sends to IP literals without dns.lookup. */
export async function bindSocket(options: SocketOptions): Promise<dgram.Socket> {
  const host = options.host ?? '127.0.0.1';
  const lookups = { pending: 0 };
  const socket = dgram.createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4', reuseAddr: false, lookup: literalLookup(lookups) });
  pendingLookups.set(socket, lookups);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    socket.once('error', onError);
    socket.bind(options.port ?? 0, host, () => {
      socket.off('error', onError);
      resolve();
    });
  });
  if (options.receiveBufferSize) socket.setRecvBufferSize(options.receiveBufferSize);
  if (options.sendBufferSize) socket.setSendBufferSize(options.sendBufferSize);
  // ICMP errors (e.g. port unreachable) surface as socket errors; they concern one send, not the socket.
  socket.on('error', () => {});
  return socket;
}

type Lookup = NonNullable<dgram.SocketOptions['lookup']>;

/** Host-name lookups still running per socket: their datagrams are not in the send queue yet. */
const pendingLookups = new WeakMap<dgram.Socket, { pending: number }>();

/**
 * dgram's address lookup for `send`, which asks it for every datagram. Peers here are IP literals
 * (a received datagram's source, or an address the client resolved), and Node's default, dns.lookup,
 * answers a literal only in a later process.nextTick, after its option checks: a deferred callback
 * and its allocations per datagram. A literal is answered at once instead (the datagram goes out
 * within `send`); anything else goes to dns.lookup as before. The last literal is remembered: most
 * datagrams go to the same peer as the one before.
 */
function literalLookup(lookups: { pending: number }): Lookup {
  let lastLiteral = '';
  let lastVersion = 0;
  return (address, options, callback) => {
    if (address === lastLiteral) return callback(null, address, lastVersion);
    const version = isIP(address);
    if (version === 0) {
      lookups.pending++;
      // dgram passes the socket's family (4 or 6) where the type says options; dns.lookup takes either.
      return dns.lookup(address, options, (error, resolved, family) => {
        lookups.pending--;
        callback(error, resolved, family);
      });
    }
    lastLiteral = address;
    lastVersion = version;
    callback(null, address, version);
  };
}

/** How long close waits for lookups and queued datagrams (bounded: close never hangs). */
const DRAIN_LIMIT_MS = 1000;
const DRAIN_POLL_MS = 2;

/**
 * Closes `socket` once the datagrams already handed to `send()` have left.
 *
 * `send()` to a host name resolves it on a later tick, and libuv queues a datagram the kernel
 * cannot take at once; `close()` cancels both silently. Closing right after a last write, such as
 * DTLS's close_notify (RFC 5246 §7.2.1) or a final ACK, would lose it: the peer then keeps the
 * session until its idle timeout and may run out of session slots meanwhile.
 */
export async function closeAfterPendingSends(socket: dgram.Socket): Promise<void> {
  // One macrotask turn: sends still on their way into libuv get there.
  await new Promise<void>((resolve) => setImmediate(resolve));
  const lookups = pendingLookups.get(socket);
  const deadline = performance.now() + DRAIN_LIMIT_MS;
  while (((lookups?.pending ?? 0) > 0 || socket.getSendQueueCount() > 0) && performance.now() < deadline) {
    await new Promise<void>((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
  }
  await new Promise<void>((resolve) => socket.close(() => resolve()));
}
