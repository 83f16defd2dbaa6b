/**
 * Outer block-wise on OSCORE messages (RFC 8613 §4.1.3.4.2, §8.2.1, §8.4.1): the protected message
 * itself is fragmented hop by hop, as a proxy would; the end points reassemble before verifying.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBlock } from '../src/coap/block.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, decodeString, encodeString, getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { blockwiseRequest } from '../src/client/blockwise.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { securedSender } from '../src/client/security.js';
import { addDemoResources, largeText } from '../src/demo/resources.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';

const SERVER = { address: '10.0.0.1', port: 5683 };
const COMMON = { masterSecret: Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex'), masterSalt: Buffer.from('9e7ca92223786340', 'hex') };

function setup() {
  const net = new FakeNetwork();
  const server = new CoapServer(net.endpoint(SERVER, {}, 1), {
    security: new OscoreServerSecurity([new OscoreSecurityContext({ ...COMMON, senderId: Buffer.from([1]), recipientIds: [EMPTY_BYTES] }, new VolatileSequence())]),
  });
  addDemoResources(server, { tick: false });
  const client = net.endpoint({ address: '10.0.0.2', port: 40000 }, {}, 2);
  const oscore = new OscoreClientSecurity(new OscoreSecurityContext({ ...COMMON, senderId: EMPTY_BYTES, recipientIds: [Buffer.from([1])] }, new VolatileSequence()));
  return { net, server, client, oscore };
}

const request = (code: number, path: string, payload: Uint8Array = EMPTY_BYTES): CoapMessage => ({
  type: MessageType.CON,
  code,
  messageId: 0,
  token: EMPTY_BYTES,
  options: [{ number: OptionNumber.UriPath, value: encodeString(path) }],
  payload,
});

test('outer Block1: a protected request fragmented on the way is reassembled before it is verified (§8.2.1)', async () => {
  const s = setup();
  // 1000 bytes: one inner message (no inner block-wise), fragmented only on the outside.
  const body = Buffer.from(Array.from({ length: 1000 }, (_, i) => 97 + (i % 26)));
  // One protected message, as the client produced it; then fragmented like a proxy would (Block1 outer).
  const protectedRequest = s.oscore.protect(request(Method.POST, 'echo', body));
  const raw = (m: CoapMessage) => s.client.request(m, SERVER);
  const response = await s.net.until(blockwiseRequest(raw, protectedRequest.message, { szx: 4, maxBodySize: 1 << 20, maxRestarts: 0 }));
  const inner = protectedRequest.verify(response.message, false);
  assert.ok(!(inner instanceof Error), String(inner));
  assert.equal((inner as CoapMessage).code, ResponseCode.Changed);
  assert.ok(Buffer.from((inner as CoapMessage).payload).equals(body), 'the echo verifies and carries the whole body');
  const blocks = s.net.log.filter((d) => d.to.address === SERVER.address && getOption(d.message, OptionNumber.Block1));
  assert.equal(blocks.length, 4, 'about 1015 protected bytes in 256-byte outer blocks');
  assert.ok(blocks.every((d) => getOption(d.message, OptionNumber.Oscore)), 'every fragment carries the same OSCORE option');
  const continues = s.net.log.filter((d) => d.message.code === ResponseCode.Continue);
  assert.equal(continues.length, blocks.length - 1, '2.31 Continue, unprotected, for each non-final outer block');
});

test('outer Block2: the client asks for 64-byte outer blocks and reassembles each protected response before verifying (§8.4.1)', async () => {
  const s = setup();
  const send = securedSender(s.client, SERVER, s.oscore, {}, 2);
  const response = await s.net.until(blockwiseRequest(send, request(Method.GET, 'large'), { maxBodySize: 1 << 20, maxRestarts: 0 }));
  assert.equal(decodeString(response.message.payload), largeText());
  const outerBlocks = s.net.log.filter((d) => d.from.address === SERVER.address && getOption(d.message, OptionNumber.Block2) && getOption(d.message, OptionNumber.Oscore));
  assert.ok(outerBlocks.length > 8 * 16, `${outerBlocks.length} outer blocks carried 8 inner blocks of 1024 bytes`);
  assert.ok(outerBlocks.every((d) => decodeBlock(getOption(d.message, OptionNumber.Block2)!).szx === 2));
  // Later outer blocks repeat the same OSCORE request; the server serves them from the stored
  // protected response, never as a replay.
  assert.equal(s.net.log.filter((d) => d.message.code === ResponseCode.Unauthorized).length, 0);
});
