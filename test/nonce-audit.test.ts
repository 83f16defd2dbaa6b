// The nonce audit the farm, two-node and KUDOS crash tests rely on must itself catch a reused
// (key, nonce) pair: one Partial IV protecting two different messages (RFC 8613 §7.2.1).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeMessage } from '../src/coap/codec.js';
import { MessageType } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { encodeOscoreOption } from '../src/oscore/option.js';
import { auditNonces } from './store-relay.js';

const protectedDatagram = (opts: { type?: MessageType; code: number; token: number; piv?: number; payload: string }): Buffer =>
  encodeMessage({
    type: opts.type ?? MessageType.CON,
    code: opts.code,
    messageId: opts.token,
    token: Uint8Array.of(opts.token),
    options: [{ number: OptionNumber.Oscore, value: encodeOscoreOption(opts.piv === undefined ? {} : { piv: Uint8Array.of(opts.piv), kid: Uint8Array.of(1) }) }],
    payload: Buffer.from(opts.payload),
  });
const POST = 0x02;
const CHANGED = 0x44;

test('a retransmitted request and its response pass; a response Partial IV used twice fails', () => {
  const fine = [
    { fromClient: true, datagram: protectedDatagram({ code: POST, token: 1, piv: 5, payload: 'req-a' }) },
    { fromClient: true, datagram: protectedDatagram({ code: POST, token: 1, piv: 5, payload: 'req-a' }) },
    { fromClient: false, datagram: protectedDatagram({ type: MessageType.ACK, code: CHANGED, token: 1, payload: 'resp-a' }) },
    { fromClient: false, datagram: protectedDatagram({ type: MessageType.ACK, code: CHANGED, token: 1, piv: 9, payload: 'notif-1' }) },
  ];
  assert.equal(auditNonces(fine), 1);
  const reused = [...fine, { fromClient: false, datagram: protectedDatagram({ type: MessageType.ACK, code: CHANGED, token: 2, piv: 9, payload: 'notif-2' }) }];
  assert.throws(() => auditNonces(reused), /nonce server 09 protected two different messages/);
});

test('a request Partial IV used for two different requests fails', () => {
  const log = [
    { fromClient: true, datagram: protectedDatagram({ code: POST, token: 1, piv: 5, payload: 'req-a' }) },
    { fromClient: true, datagram: protectedDatagram({ code: POST, token: 2, piv: 5, payload: 'req-b' }) },
  ];
  assert.throws(() => auditNonces(log), /nonce request 05 protected two different messages/);
});

test('two responses without a Partial IV to different requests with the same Partial IV fail', () => {
  const log = [
    { fromClient: true, datagram: protectedDatagram({ code: POST, token: 1, piv: 5, payload: 'req-a' }) },
    { fromClient: false, datagram: protectedDatagram({ type: MessageType.ACK, code: CHANGED, token: 1, payload: 'resp-a' }) },
    { fromClient: true, datagram: protectedDatagram({ code: POST, token: 2, piv: 6, payload: 'req-b' }) },
    { fromClient: false, datagram: protectedDatagram({ type: MessageType.ACK, code: CHANGED, token: 2, payload: 'resp-b' }) },
  ];
  assert.doesNotThrow(() => auditNonces(log));
  const replayedPiv = [...log, { fromClient: false, datagram: protectedDatagram({ type: MessageType.ACK, code: CHANGED, token: 1, payload: 'resp-c' }) }];
  assert.throws(() => auditNonces(replayedPiv), /nonce client 05 protected two different messages/);
});
