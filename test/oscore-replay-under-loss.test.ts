/**
 * Issue 21 item 4: under load, a burst of OSCORE requests lost on the way to the server (a full
 * receive queue) comes back as CoAP retransmissions 2–3 s later, thousands of Partial IVs behind
 * the replay window. They were never received, so RFC 8613 §7.4's "Replay detected" (a Partial IV
 * that "has ... been received before") is the wrong answer: each must get an Echo challenge (RFC
 * 9175 §2.3) and succeed on the client's retry with a fresh Partial IV. Deterministic: an
 * in-memory network on a fake clock drops the first transmission of 40 consecutive requests.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode, codeToString } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { securedSender, withEchoRetry } from '../src/client/security.js';
import { OscoreSecurityContext, VolatileSequence, type SecurityContextInput } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import type { PeerAddress } from '../src/transport/transport.js';
import { FakeNetwork } from './support/network.js';

const SERVER: PeerAddress = { address: '10.0.0.1', port: 5683 };
const CLIENT: PeerAddress = { address: '10.0.0.2', port: 40000 };
const hex = (s: string): Uint8Array => Buffer.from(s, 'hex');
const COMMON = { masterSecret: hex('0102030405060708090a0b0c0d0e0f10'), masterSalt: hex('9e7ca92223786340') };
const CLIENT_CONTEXT: SecurityContextInput = { ...COMMON, senderId: hex(''), recipientIds: [hex('01')], name: 'server' };
const SERVER_CONTEXT: SecurityContextInput = { ...COMMON, senderId: hex('01'), recipientIds: [hex('')], name: 'client' };

const IN_FLIGHT = 32;
const PER_WORKER = 150;
const DROPPED = 40;

test('a burst of requests lost under load is challenged and retried, never answered "Replay detected"', { timeout: 120_000 }, async () => {
  const net = new FakeNetwork();
  net.delay = () => 4; // 5 ms each way: about 3,000 requests per fake second at 32 in flight
  const server = new CoapServer(net.endpoint(SERVER, { nstart: 256 }, 1), {
    security: new OscoreServerSecurity([new OscoreSecurityContext(SERVER_CONTEXT, new VolatileSequence())], { now: () => net.clock.now() }),
  });
  server.resource('/r', { GET: () => ({ code: ResponseCode.Content, payload: 'ok' }) });

  // The receive queue overflows once: the first transmissions of 40 consecutive requests are lost.
  const seen = new Set<number>();
  let requestsSent = 0;
  let dropped = 0;
  net.drop = (d) => {
    if (d.to.address !== SERVER.address || d.message.type !== MessageType.CON || seen.has(d.message.messageId)) return false;
    seen.add(d.message.messageId);
    requestsSent++;
    const drop = requestsSent > 500 && dropped < DROPPED;
    if (drop) dropped++;
    return drop;
  };

  const endpoint = net.endpoint(CLIENT, { nstart: IN_FLIGHT }, 7);
  const send = withEchoRetry(securedSender(endpoint, SERVER, new OscoreClientSecurity(new OscoreSecurityContext(CLIENT_CONTEXT, new VolatileSequence()))));
  const get: CoapMessage = { type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options: [{ number: OptionNumber.UriPath, value: encodeString('r') }], payload: EMPTY_BYTES };
  const answers = new Map<string, number>();
  const worker = async (): Promise<void> => {
    for (let i = 0; i < PER_WORKER; i++) {
      const response = await send({ ...get, options: get.options.slice() });
      const key = `${codeToString(response.message.code)} ${decodeString(response.message.payload)}`;
      answers.set(key, (answers.get(key) ?? 0) + 1);
    }
  };
  await net.until(Promise.all(Array.from({ length: IN_FLIGHT }, worker)), 60_000);

  assert.equal(dropped, DROPPED);
  assert.deepEqual([...answers], [['2.05 Content ok', IN_FLIGHT * PER_WORKER]]);
});
