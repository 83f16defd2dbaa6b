/**
 * Issue 21 (h21-devices3): a ContextTable lends a context's key, window and budget objects to the
 * next device's context when it puts the context away (no allocation per device that comes back).
 * What a table-made context hands out publicly is never lent: a `sender`, `params`, `replay` or
 * `challenges` object kept past eviction still reads and writes its own device's keys and state,
 * never another's. And through the server, whatever the order of requests, evictions and
 * responses protected later (a handler that waited), every response is sealed with its own
 * device's key and no (key, nonce) pair is ever sealed twice (RFC 8613 §5.2, §7.2.1).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { nonce } from '../src/oscore/context.js';
import { ContextTable } from '../src/oscore/context-table.js';
import { decodeOscoreOption } from '../src/oscore/option.js';
import { protectRequest, unprotectResponse, type RequestBinding } from '../src/oscore/protect.js';
import { ContextDirectory, OscoreSecurityContext, VolatileSequence, serving, type SecurityContextInput } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import type { EndpointContext } from '../src/exchange/context.js';
import type { ResponseProtector } from '../src/server/security.js';

/** Device i's server-side input: one-byte kid i, same array lengths for every device (so key objects are lent between them). */
const serverInput = (i: number): SecurityContextInput => ({ masterSecret: Uint8Array.of(0x5a, i, 1, 2, 3), senderId: new Uint8Array(0), recipientIds: [Uint8Array.of(i)], name: `device-${i}` });
const clientOf = (i: number): OscoreSecurityContext => new OscoreSecurityContext({ masterSecret: Uint8Array.of(0x5a, i, 1, 2, 3), senderId: Uint8Array.of(i), recipientIds: [new Uint8Array(0)] }, new VolatileSequence());
/** Device i's keys as a context of its own derives them. */
const own = (i: number) => {
  const c = new OscoreSecurityContext(serverInput(i), new VolatileSequence());
  return { sender: [...c.sender.senderKey], recipient: [...c.recipients[0]!.params.recipientKey], iv: [...c.sender.commonIv] };
};

test('a table-made context\'s public sender, params, replay and challenges kept past eviction are its own device\'s, never the next device\'s', () => {
  const t = new ContextTable({ active: 1 });
  t.add(serverInput(1));
  t.add(serverInput(2));
  const directory = new ContextDirectory([], t);
  // Device 2 once, its keys derived: kept by the table when it is put away, so its next context adopts them.
  const first = directory.find(Uint8Array.of(2), undefined)!;
  serving.params(first.recipient);
  const one = directory.find(Uint8Array.of(1), undefined)!;
  // What a user keeps: the public objects (the Recipient Context first, as the server derives it).
  const params = one.recipient.params;
  const sender = one.context.sender;
  const replay = one.recipient.replay;
  const challenges = one.recipient.challenges;
  // What the server works with: lent on at eviction.
  const lentSender = serving.sender(one.context);
  const lentParams = serving.params(one.recipient);
  const lentState = serving.state(one.recipient);
  assert.equal(lentState.replay.accept(3), true);
  const two = directory.find(Uint8Array.of(2), undefined)!; // device 1 put away, its objects lent to device 2
  assert.equal(serving.sender(two.context), lentSender, 'the key objects were lent on (else this test shows nothing)');
  assert.equal(serving.params(two.recipient), lentParams);
  assert.equal(serving.state(two.recipient).replay.accept(9), true);
  assert.equal(serving.state(two.recipient), lentState, 'the window objects were lent on');
  assert.deepEqual([...lentSender.senderKey], own(2).sender, 'the lent objects carry device 2\'s keys now');

  // The kept public objects: device 1's keys, window and budget, whatever device 2 does.
  assert.deepEqual([...sender.senderKey], own(1).sender);
  assert.deepEqual([...sender.commonIv], own(1).iv);
  assert.deepEqual([...sender.senderId], []);
  assert.deepEqual([...params.recipientKey], own(1).recipient);
  assert.deepEqual([...params.recipientId], [1]);
  assert.notDeepEqual([...params.recipientKey], own(2).recipient);
  assert.equal(replay.verdict(3), 'replayed', 'device 1\'s window');
  assert.equal(replay.verdict(9), 'fresh', 'not device 2\'s');
  challenges.accepted = 7;
  assert.equal(serving.state(two.recipient).challenges.accepted, 0, 'device 2\'s budget untouched');
  assert.equal(replay.accept(4), true);
  assert.equal(serving.state(two.recipient).replay.verdict(4), 'fresh', 'device 2\'s window untouched');
  // Device 1 again: the same window and budget as the kept objects saw.
  const again = directory.find(Uint8Array.of(1), undefined)!;
  assert.equal(serving.state(again.recipient).replay.verdict(4), 'replayed');
  assert.equal(serving.state(again.recipient).challenges.accepted, 7);
  // The evicted object, asked again by the server (a response in flight), has device 1's keys.
  assert.deepEqual([...serving.sender(one.context).senderKey], own(1).sender);
  assert.deepEqual([...serving.params(one.recipient).recipientKey], own(1).recipient);
  assert.deepEqual([...sender.senderKey], own(1).sender, 'and the kept copy still does');
});

const source: EndpointContext = { peer: { address: '127.0.0.1', port: 40001 }, peerKey: '127.0.0.1:40001', scheme: 'coap' } as EndpointContext;

test('through the server, devices taking turns in an LRU of 2, responses protected late: each sealed with its own device\'s key, no (key, nonce) twice', () => {
  const DEVICES = 6;
  const t = new ContextTable({ active: 2 });
  for (let i = 0; i < DEVICES; i++) t.add({ ...serverInput(i), echoOnRestart: false });
  const server = new OscoreServerSecurity([], { table: t });
  const clients = Array.from({ length: DEVICES }, (_, i) => clientOf(i));
  const expectedKeys = Array.from({ length: DEVICES }, (_, i) => own(i));
  let seed = 0x1234567;
  const next = (n: number): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) >>> 8) % n;
  /** Responses still to protect: a handler that has not answered yet. */
  const waiting: { device: number; binding: RequestBinding; requestNonce: Uint8Array; protect: ResponseProtector; observe: boolean }[] = [];
  const sealed = new Set<string>();
  let responses = 0;
  const answer = (w: (typeof waiting)[number], kind: 'response' | 'notification'): void => {
    const response = w.protect({ type: MessageType.ACK, code: ResponseCode.Content, messageId: 0, token: new Uint8Array(0), options: [], payload: Buffer.from(`to ${w.device}`) }, kind);
    // The nonce it was sealed under (§8.3): its own Partial IV with the server's Sender ID, or the request's.
    const option = response.options.find((o) => o.number === OptionNumber.Oscore)!;
    const { piv } = decodeOscoreOption(option.value);
    const used = piv === undefined ? w.requestNonce : nonce(Uint8Array.from(expectedKeys[w.device]!.iv), new Uint8Array(0), piv);
    const pair = `${expectedKeys[w.device]!.sender.join(',')}/${Buffer.from(used).toString('hex')}`;
    assert.equal(sealed.has(pair), false, `(key, nonce) sealed twice: device ${w.device}, nonce ${Buffer.from(used).toString('hex')}`);
    sealed.add(pair);
    const opened = unprotectResponse(response, clients[w.device]!.primaryRecipient.params, w.binding);
    assert.equal(opened.ok, true, `device ${w.device} verifies its response (its own key)`);
    assert.equal(opened.ok && Buffer.from(opened.message.payload).toString(), `to ${w.device}`);
    responses++;
  };
  for (let step = 0; step < 1500; step++) {
    const action = next(10);
    if (action < 6 || waiting.length === 0) {
      const device = next(DEVICES);
      const client = clients[device]!;
      const seq = client.nextSequenceNumber();
      const request: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: step & 0xffff, token: Uint8Array.of(step & 0xff), options: [{ number: OptionNumber.UriPath, value: Buffer.from('hello') }], payload: new Uint8Array(0) };
      const { message, binding } = protectRequest(request, client.sender, seq);
      const outcome = server.unprotect(message, source);
      assert.equal(outcome?.ok, true, `step ${step}: device ${device}'s request ${seq}`);
      if (!outcome?.ok) continue;
      const requestNonce = nonce(Uint8Array.from(expectedKeys[device]!.iv), Uint8Array.of(device), binding.piv);
      waiting.push({ device, binding, requestNonce, protect: outcome.protect, observe: next(3) === 0 });
    } else {
      // A handler answers now: maybe long after its context was put away; an observation notifies again.
      const w = waiting.splice(next(waiting.length), 1)[0]!;
      answer(w, 'response');
      if (w.observe) for (let n = next(3); n > 0; n--) answer(w, 'notification');
    }
  }
  for (const w of waiting.splice(0)) answer(w, 'notification');
  assert.ok(responses > 900, `${responses} responses checked`);
  assert.ok(t.active.length <= 2);
});

test('remove() takes a materialised context out of the LRU: the entry\'s next use is a new context, and putting contexts away later touches only live entries', () => {
  const t = new ContextTable({ active: 2 });
  const one = t.add(serverInput(1));
  t.add(serverInput(2));
  const removed = t.find(Uint8Array.of(1), undefined)!.context;
  serving.params(t.find(Uint8Array.of(2), undefined)!.recipient);
  t.remove(one);
  assert.deepEqual(t.active.length, 1);
  assert.ok(!t.active.includes(removed));
  assert.equal(t.add(serverInput(3)), one, 'the entry is reused');
  const three = t.find(Uint8Array.of(3), undefined)!;
  assert.notEqual(three.context, removed);
  t.add(serverInput(4));
  t.find(Uint8Array.of(4), undefined); // puts device 2 away, not the removed one
  assert.deepEqual(t.active.map((c) => c.name), ['device-3', 'device-4']);
  assert.deepEqual([...serving.params(three.recipient).recipientKey], own(3).recipient);
});
