/**
 * Outgoing CONs wait for their first timeout in one retransmission wheel (src/messaging/
 * retransmission-wheel.ts) instead of a timer each: RFC 7252 §4.2's times must stay exact — each
 * CON's initial timeout its own draw in [ACK_TIMEOUT, ACK_TIMEOUT × ACK_RANDOM_FACTOR] from its send
 * time, doubling, MAX_RETRANSMIT retransmissions, then the timeout — whatever was sent or
 * acknowledged around it. Lockstep, on the fake clock.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMessage, encodeEmpty } from '../src/coap/codec.js';
import { Method } from '../src/coap/codes.js';
import { MessageType, type CoapMessage } from '../src/coap/message.js';
import { MessageLayer } from '../src/messaging/message-layer.js';
import { withDefaults } from '../src/messaging/parameters.js';
import { SeededRandom } from '../src/util/random.js';
import { FakeScheduler } from '../src/util/scheduler.js';

const PEER = { address: '192.0.2.7', port: 5683 };

/** Seeded bytes; the initial timeouts' random factors (float()) as scripted. */
class ScriptedFloats extends SeededRandom {
  constructor(private readonly floats: number[]) {
    super(3);
  }
  override float(): number {
    const f = this.floats.shift();
    if (f === undefined) throw new Error('more CONs than scripted random factors');
    return f;
  }
}

interface Outcome {
  ack?: number;
  timeout?: number;
}

function layerWith(floats: number[]) {
  const clock = new FakeScheduler(0);
  const sent: Array<{ at: number; messageId: number }> = [];
  const layer = new MessageLayer({
    parameters: withDefaults(),
    scheduler: clock,
    random: new ScriptedFloats(floats),
    send: (data) => sent.push({ at: clock.now(), messageId: decodeMessage(data).messageId }),
    events: { onRequest() {}, onSeparateResponse: () => false },
  });
  const outcomes: Outcome[] = [];
  const sendCon = (): number => {
    const outcome: Outcome = {};
    outcomes.push(outcome);
    const message: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: 0, token: Uint8Array.of(outcomes.length), options: [], payload: new Uint8Array(0) };
    layer.sendConfirmable(message, PEER, { onAck: () => (outcome.ack = clock.now()), onReset() {}, onTimeout: () => (outcome.timeout = clock.now()) });
    return message.messageId;
  };
  return { clock, sent, layer, outcomes, sendCon };
}

test('each CON retransmits at its own send time + its own initial timeout, doubling, then times out (§4.2), also when sent or acknowledged around others', () => {
  // Send times and random factors: ACK_TIMEOUT 2 s, ACK_RANDOM_FACTOR 1.5, so T = 2000 × (1 + 0.5 f).
  const plan = [
    { at: 0, f: 0 }, // T = 2000 exactly: handed off the moment the wheel fires
    { at: 150, f: 0.999 }, // T = 2999
    { at: 700, f: 0.5 }, // T = 2500, acknowledged at 2400: after ACK_TIMEOUT, before its timeout
    { at: 1999, f: 0.25 }, // T = 2250, acknowledged at 100: the wheel's timer was armed for it
    { at: 2000, f: 0 }, // sent as the first one is handed off
    { at: 2600, f: 0.75 }, // T = 2750
  ];
  const { clock, sent, outcomes, sendCon, layer } = layerWith(plan.map((p) => p.f));
  const ids: number[] = [];
  const acks = new Map([
    [2, 2400],
    [3, 2100],
  ]);
  const events = [...plan.map((p, i) => ({ at: p.at, run: () => ids.push(sendCon()), i })), ...[...acks].map(([i, at]) => ({ at, run: () => layer.receive(encodeEmpty(MessageType.ACK, ids[i]!), PEER), i }))].sort(
    (a, b) => a.at - b.at,
  );
  for (const event of events) {
    clock.advance(event.at - clock.now());
    event.run();
  }
  clock.advance(200_000);

  const transmissions = (i: number): number[] => sent.filter((s) => s.messageId === ids[i]).map((s) => s.at);
  plan.forEach((p, i) => {
    const timeout = 2000 * (1 + 0.5 * p.f);
    const acked = acks.get(i);
    if (acked !== undefined) {
      assert.deepEqual(transmissions(i), [p.at], `CON ${i}: acknowledged at ${acked}, never retransmitted`);
      assert.equal(outcomes[i]!.ack, acked);
      assert.equal(outcomes[i]!.timeout, undefined);
      return;
    }
    // Sent at t, retransmitted at t + T, t + 3T, t + 7T, t + 15T; given up at t + 31T.
    const expected = [0, 1, 3, 7, 15].map((k) => p.at + k * timeout);
    assert.deepEqual(transmissions(i), expected, `CON ${i}: sent at ${p.at} with T = ${timeout}`);
    assert.equal(outcomes[i]!.timeout, p.at + 31 * timeout, `CON ${i} times out after MAX_RETRANSMIT`);
  });
  assert.equal(layer.getStats().outstandingConfirmables, 0);
});

test('outstanding CONs wait for their first timeout without a timer each', () => {
  const count = 1000;
  const { clock, sent, layer, sendCon } = layerWith(Array.from({ length: count }, (_, i) => (i % 10) / 10));
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    ids.push(sendCon());
    clock.advance(1); // spread over 1 s: none has outlived ACK_TIMEOUT yet
  }
  // The wheel's one timer and the layer's sweep (Message ID lifetimes): not one per CON.
  assert.ok(clock.pendingTimers() <= 2, `${clock.pendingTimers()} timers for ${count} outstanding CONs`);
  // Half are acknowledged; the other half each get a timer once they outlive ACK_TIMEOUT.
  for (let i = 0; i < count; i += 2) layer.receive(encodeEmpty(MessageType.ACK, ids[i]!), PEER);
  clock.advance(1999 - clock.now());
  assert.equal(sent.length, count, 'nothing retransmitted before ACK_TIMEOUT');
  clock.advance(1000);
  assert.ok(clock.pendingTimers() <= count / 2 + 2, `${clock.pendingTimers()} timers for ${count / 2} CONs past ACK_TIMEOUT`);
  // The last was sent at 999 with T ≤ 2900: by 3900 every unacknowledged CON went out twice, none thrice (3T ≥ 6000).
  clock.advance(3900 - clock.now());
  assert.equal(sent.length, count + count / 2, 'each unacknowledged CON retransmitted once');
  assert.equal(layer.getStats().retransmissions, count / 2);
});

test('closing the layer stops the wheel: outstanding CONs time out at once, nothing is retransmitted', () => {
  const { clock, sent, layer, outcomes, sendCon } = layerWith([0.3, 0.6]);
  sendCon();
  clock.advance(500);
  sendCon();
  layer.close();
  assert.deepEqual(
    outcomes.map((o) => o.timeout),
    [500, 500],
  );
  clock.advance(100_000);
  assert.equal(sent.length, 2);
  assert.equal(clock.pendingTimers(), 0);
});
