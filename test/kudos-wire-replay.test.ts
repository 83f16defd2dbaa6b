/**
 * A KUDOS message replayed by someone on the path (draft-ietf-core-oscore-key-update §4.3.1,
 * §4.3.4, §7), over loopback UDP: the divergent request of an update, captured by a relay and sent
 * again from another address, is refused — with 4.01 "Replay detected" while the server is still
 * PENDING (the replay window of that CTX_TEMP), with 4.00 (RFC 8613 §8.2: it does not decrypt) after
 * the update and after a later one, its CTX_TEMP being derived from a stale context — and it never
 * moves the server's state or context.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import { decodeMessage } from '../src/coap/codec.js';
import { ResponseCode } from '../src/coap/codes.js';
import { getOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { decodeOscoreOption } from '../src/oscore/option.js';
import { hex } from './kudos-helpers.js';
import { kudosStack } from './kudos-stack.js';
import type { Datagram } from './kudos-relay.js';

const isDivergentRequest = (d: Datagram): boolean => {
  if (d.from !== 'client') return false;
  const value = getOption(decodeMessage(d.data), OptionNumber.Oscore);
  const kudos = value === undefined ? undefined : decodeOscoreOption(value).kudos;
  return kudos !== undefined && (kudos.x & 0x40) === 0;
};

/** Sends `data` from a fresh socket and returns the code of the answer. */
async function replay(data: Buffer, port: number): Promise<number> {
  const socket = createSocket('udp4');
  try {
    return await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer to the replayed message within 3 s')), 3000);
      socket.on('message', (answer) => {
        clearTimeout(timer);
        resolve(decodeMessage(answer).code);
      });
      socket.send(data, port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

test('a replayed divergent request is refused while PENDING, after the update, and after a later update; state never moves', async () => {
  const s = await kudosStack();
  try {
    await s.peer.rekey();
    const divergent = s.relay.datagrams.find(isDivergentRequest)!;
    assert.ok(divergent, 'the capture has the divergent request');
    const port = s.server.address().port;
    // Still PENDING (no key confirmation yet): the same (X, nonce) again is a replay under that CTX_TEMP.
    assert.equal(s.serverSession.state, 'PENDING');
    const pendingSecrets = hex(s.serverSession.currentSecrets.masterSecret);
    assert.equal(await replay(divergent.data, port), ResponseCode.Unauthorized);
    assert.equal(s.serverSession.state, 'PENDING');
    assert.equal(hex(s.serverSession.currentSecrets.masterSecret), pendingSecrets);
    // Key confirmation, then the replay: CTX_TEMP from the now stale CTX_OLD does not verify.
    await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'confirm' });
    assert.equal(s.serverSession.state, 'IDLE');
    const updated = hex(s.serverSession.currentSecrets.masterSecret);
    // RFC 8613 §8.2 step 6: a message that does not decrypt gets 4.00.
    assert.equal(await replay(divergent.data, port), ResponseCode.BadRequest);
    assert.equal(s.serverSession.state, 'IDLE');
    assert.equal(hex(s.serverSession.currentSecrets.masterSecret), updated);
    // A second update; both captured divergent requests are stale now.
    await s.peer.rekey();
    await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'confirm again' });
    const second = s.relay.datagrams.filter(isDivergentRequest).at(-1)!;
    const latest = hex(s.serverSession.currentSecrets.masterSecret);
    for (const stale of [divergent, second]) assert.equal(await replay(stale.data, port), ResponseCode.BadRequest);
    assert.equal(s.serverSession.state, 'IDLE');
    assert.equal(hex(s.serverSession.currentSecrets.masterSecret), latest);
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'still fine' })).payload.toString(), 'still fine');
  } finally {
    await s.close();
  }
});
