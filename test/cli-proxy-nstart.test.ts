/**
 * `coapsec proxy --nstart N` (RFC 7252 §4.7, §4.8.1): the upstream leg keeps up to N requests
 * outstanding to one server; by default 1, so requests from several clients to one origin go
 * upstream one after another. The origin here is a bare UDP socket that records what arrives and
 * answers nothing until the test lets it.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, test } from 'node:test';
import { decodeMessage, encodeMessage } from '../src/coap/codec.js';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeString, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { killChildren, startDaemon } from './support/cli-harness.js';

after(killChildren);

async function bound(): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return socket;
}

/** Sends `count` proxied GETs to `proxyPort` at once and counts the requests the origin sees within `ms`; then answers them all. */
async function upstreamAtOnce(proxyArgs: readonly string[], count: number, ms: number): Promise<{ seen: number; answered: number }> {
  const origin = await bound();
  const client = await bound();
  const originPort = origin.address().port;
  const proxy = await startDaemon(['proxy', '--bind', '127.0.0.1:0', '--forward', '--allow-destination', '127.0.0.1', ...proxyArgs], /proxy on coap:\/\/127\.0\.0\.1:(\d+)/);
  try {
    const seen: { message: CoapMessage; port: number }[] = [];
    origin.on('message', (data, rinfo) => seen.push({ message: decodeMessage(data), port: rinfo.port }));
    let answered = 0;
    client.on('message', (data) => {
      const m = decodeMessage(data);
      if (m.code === ResponseCode.Content) answered++;
    });
    for (let i = 0; i < count; i++) {
      const request: CoapMessage = {
        type: MessageType.CON,
        code: Method.GET,
        messageId: 0x1000 + i,
        token: Uint8Array.of(i),
        options: [{ number: OptionNumber.ProxyUri, value: encodeString(`coap://127.0.0.1:${originPort}/r${i}`) }],
        payload: EMPTY_BYTES,
      };
      client.send(encodeMessage(request), proxy.port, '127.0.0.1');
    }
    await new Promise((resolve) => setTimeout(resolve, ms));
    const outstanding = seen.length;
    // Answer everything (and whatever the freed slots let through), piggybacked, until every client request is answered or 3 s pass.
    let next = 0;
    const deadline = Date.now() + 3000;
    while (answered < count && Date.now() < deadline) {
      for (; next < seen.length; next++) {
        const { message, port } = seen[next]!;
        if (message.type !== MessageType.CON) continue;
        const response: CoapMessage = { type: MessageType.ACK, code: ResponseCode.Content, messageId: message.messageId, token: message.token, options: [], payload: Buffer.from('ok') };
        origin.send(encodeMessage(response), port, '127.0.0.1');
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return { seen: outstanding, answered };
  } finally {
    await proxy.stop();
    origin.close();
    client.close();
  }
}

test('by default the proxy keeps one request outstanding to an origin (NSTART 1)', async () => {
  const r = await upstreamAtOnce([], 3, 400);
  assert.equal(r.seen, 1);
  assert.equal(r.answered, 3, 'the queued requests go upstream once the first is answered');
});

test('--nstart 3 lets three requests to one origin be outstanding at once', async () => {
  const r = await upstreamAtOnce(['--nstart', '3'], 3, 400);
  assert.equal(r.seen, 3);
  assert.equal(r.answered, 3);
});
