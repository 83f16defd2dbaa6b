/**
 * A peer's CSM that arrives before the carrier has attached to the link: a WebSocket client link
 * is handed over a promise after 'open', so transport/ws.ts (and browser/websocket.ts) keep the
 * messages that arrive meanwhile and hand them over in setHandlers. The carrier must send its own
 * CSM and arm its CSM timer before that flush: otherwise the flushed CSM opens the connection
 * first, the timer armed after it is never cancelled, and 10 s later a working connection is
 * aborted with "no CSM received" (seen as a Node client through `proxy --ws` failing after
 * a few seconds of idling, bench/browser.ts); and anything we answer to a flushed request would
 * go out before our CSM (RFC 8323 §3.3: the CSM is the first message on the connection).
 * Lockstep, fake clock, in-memory links.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { createMessage, decodeString, encodeString, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { CoapEndpoint } from '../src/exchange/endpoint.js';
import { encodeFrame } from '../src/stream/frame.js';
import { SignalCode } from '../src/stream/signals.js';
import type { PeerAddress, StreamLink, StreamTransport } from '../src/transport/transport.js';
import { FakeScheduler } from '../src/util/scheduler.js';
import { MemoryLink, MemoryNet, MemoryTransport } from './support/memory-stream.js';

const SERVER = { address: '10.0.0.1', port: 5683 };
const CLIENT = { address: '10.0.0.2', port: 40000 };

/** Like transport/ws.ts's WsLink: frames that came before setHandlers are handed over in it, at once. */
class EarlyFlushLink extends MemoryLink {
  override setHandlers(handlers: { data(d: Uint8Array): void; closed(e: Error | undefined): void }): void {
    super.setHandlers(handlers);
    for (const frame of this.inbox.splice(0)) handlers.data(frame);
  }
}

/** Connects like MemoryTransport, but the server has written (its CSM, and `extra`) before the client attaches. */
class EarlyPeerTransport implements StreamTransport {
  readonly scheme = 'coap+ws' as const;
  connects = 0;
  link: EarlyFlushLink | undefined;

  constructor(
    private readonly net: MemoryNet,
    private readonly extra: CoapMessage[],
  ) {}

  async connect(peer: PeerAddress): Promise<StreamLink> {
    this.connects++;
    const server = this.net.listeners.get(`${peer.address}:${peer.port}`)!;
    const ours = new EarlyFlushLink(peer, this.net);
    const theirs = new MemoryLink(CLIENT, this.net);
    ours.other = theirs;
    theirs.other = ours;
    this.net.links.push(ours, theirs);
    server.accept!(theirs); // the server's carrier writes its CSM into our inbox now
    for (const message of this.extra) ours.inbox.push(encodeFrame(message, 'websocket'));
    this.link = ours;
    return ours;
  }
  setAcceptHandler(): void {}
  localAddress(): PeerAddress {
    return CLIENT;
  }
  async close(): Promise<void> {}
}

const get = (path: string): CoapMessage => createMessage({ code: Method.GET, token: Uint8Array.of(7), options: [{ number: OptionNumber.UriPath, value: encodeString(path) }] });

function setup(extra: CoapMessage[] = []) {
  const net = new MemoryNet();
  const clock = new FakeScheduler();
  const server = new CoapEndpoint({ transport: new MemoryTransport(SERVER, net), scheduler: clock });
  server.setRequestHandler((_request, exchange) => exchange.respond(createMessage({ code: ResponseCode.Content, payload: encodeString('ok') })));
  const transport = new EarlyPeerTransport(net, extra);
  const client = new CoapEndpoint({ transport, scheduler: clock });
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setImmediate(r));
      net.deliver();
    }
  };
  return { net, clock, client, transport, settle };
}

test('a CSM flushed from before the carrier attached does not leave a CSM timer that later aborts the connection', async () => {
  const s = setup();
  const first = s.client.request(get('a'), SERVER);
  await s.settle();
  assert.equal(decodeString((await first).message.payload), 'ok');
  // Past the 10 s CSM timeout, well before keep-alive (25 s) and idle release (60 s).
  s.clock.advance(15_000);
  await s.settle();
  const wrote = s.transport.link!.wrote;
  assert.equal(wrote.find((m) => m.code === SignalCode.Abort), undefined, `the client aborted: ${wrote.filter((m) => m.code === SignalCode.Abort).map((m) => decodeString(m.payload)).join()}`);
  const second = s.client.request(get('b'), SERVER);
  await s.settle();
  assert.equal(decodeString((await second).message.payload), 'ok');
  assert.equal(s.transport.connects, 1, 'the connection was lost and opened again');
});

test('our CSM is the first message on the connection even when the peer’s early messages ask for an answer (RFC 8323 §3.3)', async () => {
  const s = setup([get('early')]);
  const first = s.client.request(get('a'), SERVER);
  await s.settle();
  await first;
  const wrote = s.transport.link!.wrote;
  assert.equal(wrote[0]!.code, SignalCode.Csm, `the first message sent was ${wrote[0]!.code}`);
  // The early request (a client serves nothing) was answered 5.01, after the CSM.
  assert.ok(wrote.slice(1).some((m) => m.code === ResponseCode.NotImplemented));
});
