/**
 * A CON answered while it is being delivered (the common case: a handler that answers at once)
 * joins the deduplication records only with its answer (message-layer.ts, InboundMessage.delivering).
 * Meanwhile its peer's state must stay, even if the peer's last record goes for capacity, or a
 * retransmission would find no record and be processed again (RFC 7252 §4.5).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType, type CoapMessage } from '../src/coap/message.js';
import { withDefaults } from '../src/messaging/parameters.js';
import { MessageLayer, type InboundMessage } from '../src/messaging/message-layer.js';
import type { PeerAddress } from '../src/transport/transport.js';
import { SeededRandom } from '../src/util/random.js';
import { FakeScheduler } from '../src/util/scheduler.js';

const A: PeerAddress = { address: '192.0.2.1', port: 5001 };
const B: PeerAddress = { address: '192.0.2.2', port: 5002 };

const get = (messageId: number, token: number): Buffer =>
  encodeMessage({ type: MessageType.CON, code: Method.GET, messageId, token: Uint8Array.of(token), options: [], payload: new Uint8Array(0) });
const content = (): CoapMessage => ({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: new Uint8Array(0), options: [], payload: new Uint8Array(0) });

test("a peer's state stays while its CON is delivered, even when its last record goes for capacity meanwhile", () => {
  const sent: Array<{ peer: PeerAddress; bytes: Uint8Array }> = [];
  const handled: string[] = [];
  let parkedB: InboundMessage | undefined;
  const layer: MessageLayer = new MessageLayer({
    parameters: withDefaults({}),
    scheduler: new FakeScheduler(0),
    random: new SeededRandom(3),
    send: (bytes, peer) => sent.push({ peer, bytes }),
    // One answered record in all: each answer evicts the one before.
    maxTrackedMessages: 1,
    events: {
      onRequest: (request, inbound) => {
        const name = `${inbound.peer.port === A.port ? 'A' : 'B'}:${request.messageId}`;
        handled.push(name);
        if (name === 'B:7') {
          parkedB = inbound; // answered later (a slow handler)
          return;
        }
        if (name === 'A:2') {
          // B's answer takes the only record slot, evicting A's record of message 1: A then has no
          // record at all while message 2 is still being delivered.
          const response = content();
          response.token = parkedB!.message.token;
          layer.respond(parkedB!, response);
        }
        const response = content();
        response.token = request.token;
        layer.respond(inbound, response);
      },
      onSeparateResponse: () => false,
    },
  });

  layer.receive(get(1, 0xa1), A);
  layer.receive(get(7, 0xb7), B);
  layer.receive(get(2, 0xa2), A);
  assert.deepEqual(handled, ['A:1', 'B:7', 'A:2']);
  const answerToTwo = sent.at(-1)!;
  assert.deepEqual(answerToTwo.peer, A);

  // The retransmission of A's message 2 gets the same ACK again and is not processed twice.
  sent.length = 0;
  layer.receive(get(2, 0xa2), A);
  assert.deepEqual(handled, ['A:1', 'B:7', 'A:2'], 'the duplicate was not handed up again');
  assert.equal(sent.length, 1);
  assert.deepEqual([...sent[0]!.bytes], [...answerToTwo.bytes], 'the cached ACK, byte for byte');
});
