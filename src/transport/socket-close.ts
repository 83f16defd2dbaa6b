/** Closing a dgram socket without losing the datagrams written just before. */
import type dgram from 'node:dgram';

/** How long close waits for the kernel to take queued datagrams (bounded: close never hangs). */
const DRAIN_LIMIT_MS = 200;
const DRAIN_POLL_MS = 2;

/**
 * Closes `socket` once the datagrams already handed to `send()` have left.
 *
 * `dgram.Socket.send()` resolves the address on a later tick, even an IP literal, and libuv queues
 * a datagram the kernel cannot take at once; `close()` cancels both silently. Closing right after a
 * last write, such as DTLS's close_notify (RFC 5246 §7.2.1) or a final ACK, would lose it: the peer
 * then keeps the session until its idle timeout and may run out of session slots meanwhile.
 */
export async function closeAfterPendingSends(socket: dgram.Socket): Promise<void> {
  // One macrotask turn: every pending address lookup (process.nextTick) has handed its datagram to libuv.
  await new Promise<void>((resolve) => setImmediate(resolve));
  const deadline = performance.now() + DRAIN_LIMIT_MS;
  while (socket.getSendQueueCount() > 0 && performance.now() < deadline) {
    await new Promise<void>((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
  }
  await new Promise<void>((resolve) => socket.close(() => resolve()));
}
