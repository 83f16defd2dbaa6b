/**
 * Men in the middle for tests of what a leg carries: a WebSocket relay (CoAP over WebSockets,
 * RFC 8323 §4: one CoAP message per binary WebSocket message) and a UDP relay. Both record every
 * message they pass, in both directions, and the WebSocket relay can rewrite one in flight.
 */
import { createSocket, type Socket } from 'node:dgram';
import { WebSocket, WebSocketServer } from 'ws';
import { decodeMessage } from '../../src/coap/codec.js';
import type { CoapMessage } from '../../src/coap/message.js';

export type Direction = 'to-server' | 'to-client';

export interface Relay {
  readonly port: number;
  /** Every message passed, in order, as sent on (after any rewrite). */
  readonly passed: Array<{ direction: Direction; bytes: Buffer }>;
  close(): Promise<void>;
}

/** Rewrites a message in flight: return other bytes to send instead, or undefined to pass it unchanged. */
export type Rewrite = (bytes: Buffer, direction: Direction) => Buffer | undefined;

/** A WebSocket relay in front of a coap+ws server on 127.0.0.1:`targetPort`. */
export async function webSocketRelay(targetPort: number, rewrite: Rewrite = () => undefined): Promise<Relay> {
  const passed: Relay['passed'] = [];
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/.well-known/coap', handleProtocols: () => 'coap' });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const pass = (data: Buffer, direction: Direction): Buffer => {
    const bytes = rewrite(Buffer.from(data), direction) ?? Buffer.from(data);
    passed.push({ direction, bytes });
    return bytes;
  };
  server.on('connection', (downstream) => {
    const upstream = new WebSocket(`ws://127.0.0.1:${targetPort}/.well-known/coap`, 'coap');
    const early: Buffer[] = [];
    downstream.on('message', (data: Buffer) => {
      const bytes = pass(data, 'to-server');
      if (upstream.readyState === WebSocket.OPEN) upstream.send(bytes);
      else early.push(bytes);
    });
    upstream.on('open', () => early.splice(0).forEach((b) => upstream.send(b)));
    upstream.on('message', (data: Buffer) => downstream.send(pass(data, 'to-client')));
    upstream.on('close', () => downstream.close());
    upstream.on('error', () => downstream.terminate());
    downstream.on('close', () => upstream.close());
  });
  return {
    port: (server.address() as { port: number }).port,
    passed,
    close: async () => {
      for (const c of server.clients) c.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A UDP relay in front of a CoAP server on 127.0.0.1:`targetPort`: one upstream socket per client.
 * `drop` loses the datagrams it picks (not recorded as passed).
 */
export async function udpRelay(targetPort: number, drop: (bytes: Buffer, direction: Direction) => boolean = () => false): Promise<Relay> {
  const passed: Relay['passed'] = [];
  const bind = async (): Promise<Socket> => {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
    return socket;
  };
  const front = await bind();
  const backs = new Map<string, Promise<Socket>>();
  front.on('message', (data, client) => {
    const key = `${client.address}:${client.port}`;
    let back = backs.get(key);
    if (!back) {
      if (backs.size >= 64) return; // a test relay: bounded
      back = bind().then((socket) => {
        socket.on('message', (reply) => {
          if (drop(reply, 'to-client')) return;
          passed.push({ direction: 'to-client', bytes: Buffer.from(reply) });
          front.send(reply, client.port, client.address);
        });
        return socket;
      });
      backs.set(key, back);
    }
    if (drop(data, 'to-server')) return;
    passed.push({ direction: 'to-server', bytes: Buffer.from(data) });
    void back.then((socket) => socket.send(data, targetPort, '127.0.0.1'));
  });
  return {
    port: front.address().port,
    passed,
    close: async () => {
      const sockets = await Promise.all(backs.values());
      await Promise.all([front, ...sockets].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}

/** Whether any message passed contains `text` (as UTF-8 bytes). */
export function carried(relay: Relay, text: string): boolean {
  const needle = Buffer.from(text);
  return relay.passed.some((m) => m.bytes.includes(needle));
}

/** The CoAP requests a UDP relay passed towards the server (not the ACKs of separate responses), decoded. */
export const requestsCarried = (relay: Relay): CoapMessage[] => carriedMessages(relay, 'to-server').filter((m) => m.code >= 1 && m.code < 32);

/** The CoAP responses a UDP relay passed towards the client, decoded. */
export const responsesCarried = (relay: Relay): CoapMessage[] => carriedMessages(relay, 'to-client').filter((m) => m.code >= 64);

const carriedMessages = (relay: Relay, direction: Direction): CoapMessage[] => relay.passed.filter((m) => m.direction === direction).map((m) => decodeMessage(m.bytes));
