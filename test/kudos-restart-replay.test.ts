/**
 * RFC 8613 Appendix B.1.2 for contexts that run KUDOS: a server restarted from its KUDOS record
 * knows no replay window, so the first request under each context is answered with a protected
 * 4.01 carrying Echo and never reaches a handler; only the request that echoes the value sets the
 * window. Shown over loopback UDP with a request recorded before the restart and replayed after
 * it (from another address, as an attacker would), in IDLE and in a resumed PENDING, and on the
 * sans-IO session: the legitimate client carries on after one Echo round trip.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import { decodeMessage } from '../src/coap/codec.js';
import { ResponseCode } from '../src/coap/codes.js';
import { getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { deriveKeys } from '../src/kudos/update-ctx.js';
import { decodeOscoreOption } from '../src/oscore/option.js';
import { unprotectRequest, unprotectResponse } from '../src/oscore/protect.js';
import { CLIENT_IDENTITY, NonceLedger, Peer, SERVER_IDENTITY, echoOf, request, response, sameContext, sendRequest, tempDirectory } from './kudos-helpers.js';
import type { Datagram } from './kudos-relay.js';
import { kudosStack, type Stack } from './kudos-stack.js';

/** Sends `data` to the server from a fresh socket (another address than the client's) and returns the answer. */
async function replay(data: Buffer, port: number): Promise<CoapMessage> {
  const socket = createSocket('udp4');
  try {
    return await new Promise<CoapMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer to the replayed request within 3 s')), 3000);
      socket.on('message', (answer) => {
        clearTimeout(timer);
        resolve(decodeMessage(answer));
      });
      socket.send(data, port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

const oscoreOf = (d: Datagram) => {
  const value = getOption(decodeMessage(d.data), OptionNumber.Oscore);
  return value === undefined ? undefined : decodeOscoreOption(value);
};
const clientRequests = (s: Stack): Datagram[] => s.relay.datagrams.filter((d) => d.from === 'client' && oscoreOf(d) !== undefined);

/**
 * What the replayed request's answer says inside its protection, read with the context the server
 * holds (the test knows it; the attacker does not): the request's binding comes from the request.
 */
function innerAnswer(s: Stack, captured: Buffer, answer: CoapMessage): CoapMessage {
  const secrets = s.serverSession.currentSecrets;
  const server = deriveKeys({ ...SERVER_IDENTITY, ...secrets });
  const client = deriveKeys({ ...CLIENT_IDENTITY, ...secrets });
  const req = unprotectRequest(decodeMessage(captured), () => server.recipient);
  assert.ok(req.ok, 'the captured request is under the server context');
  const inner = unprotectResponse(answer, client.recipient, req.binding);
  assert.ok(inner.ok, `the answer verifies under the server's context: ${!inner.ok && inner.reason}`);
  return inner.message;
}

test('a request recorded before a server restart and replayed after it gets a 4.01 with Echo, never the handler; the client carries on after one Echo round trip', async () => {
  const s = await kudosStack();
  try {
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'pay 10' })).payload.toString(), 'pay 10');
    const captured = clientRequests(s).at(-1)!.data;
    await s.restartServer();
    const port = s.server.address().port;

    const answer = await replay(captured, port);
    assert.equal(answer.code, ResponseCode.Changed, 'a protected response (outer code 2.04), not an unprotected OSCORE error');
    const inner = innerAnswer(s, captured, answer);
    assert.equal(inner.code, ResponseCode.Unauthorized);
    assert.ok(echoOf(inner), 'the 4.01 carries an Echo value');
    assert.equal(inner.payload.length, 0, 'B.1.2: "no diagnostic payload"');
    assert.deepEqual(s.log, ['echo pay 10'], 'the replayed request never reached the handler');
    // Again: still no window, still a challenge, still not processed.
    assert.equal(innerAnswer(s, captured, await replay(captured, port)).code, ResponseCode.Unauthorized);
    assert.deepEqual(s.log, ['echo pay 10']);

    // The legitimate client: its first request is challenged, its repetition with Echo processed.
    const before = clientRequests(s).length;
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'pay 20' })).payload.toString(), 'pay 20');
    assert.equal(clientRequests(s).length - before, 2, 'one Echo round trip: the request and its repetition');
    assert.deepEqual(s.log, ['echo pay 10', 'echo pay 20']);
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'pay 30' })).payload.toString(), 'pay 30');
    assert.equal(clientRequests(s).length - before, 3, 'no challenge once the window is set');

    // With the window set, the recorded request is below its lower limit: refused outright.
    const late = await replay(captured, port);
    assert.equal(late.code, ResponseCode.Unauthorized);
    assert.equal(getOption(late, OptionNumber.Oscore), undefined, 'an unprotected OSCORE error (§8.2)');
    assert.equal(Buffer.from(late.payload).toString(), 'Replay detected');
    assert.deepEqual(s.log, ['echo pay 10', 'echo pay 20', 'echo pay 30']);
    assert.deepEqual(s.ledger.reused, []);
  } finally {
    await s.close();
  }
});

test('a server restarted in PENDING: a replayed divergent request and a replayed CTX_OLD request move nothing; the client completes the update through the challenge', async () => {
  const s = await kudosStack();
  try {
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'old' })).payload.toString(), 'old');
    const oldRequest = clientRequests(s).at(-1)!.data;
    await s.peer.rekey();
    const divergent = clientRequests(s).find((d) => oscoreOf(d)?.kudos !== undefined)!.data;
    assert.equal(s.serverSession.state, 'PENDING', 'no key confirmation yet');
    await s.restartServer();
    assert.equal(s.serverSession.state, 'PENDING', 'resumed PENDING from the record');
    const port = s.server.address().port;
    const events = s.serverEvents.length;

    // The divergent request again: its CTX_TEMP derives from CTX_OLD, known before the restart.
    const toDivergent = await replay(divergent, port);
    assert.equal(toDivergent.code, ResponseCode.Changed, 'a protected challenge');
    // The request made under CTX_OLD before the update: it would have aborted the execution (the
    // crash rule for a peer that left it) and reached the handler.
    await replay(oldRequest, port);
    assert.equal(s.serverSession.state, 'PENDING');
    assert.deepEqual(s.serverEvents.slice(events), [], 'no transition, no abort');
    assert.deepEqual(s.log, ['echo old', 'kudos request']);

    // The client (IDLE on CTX_NEW) is challenged under CTX_NEW, repeats, and confirms the key.
    assert.equal((await s.client.request({ method: 'POST', uri: `${s.base}/echo`, payload: 'new' })).payload.toString(), 'new');
    assert.equal(s.serverSession.state, 'IDLE');
    assert.ok(sameContext(s.clientSession, s.serverSession));
    assert.deepEqual(s.log, ['echo old', 'kudos request', 'echo new']);
    assert.deepEqual(s.ledger.reused, []);
  } finally {
    await s.close();
  }
});

test('sans-IO: after a crash every context the record holds (CTX_OLD, CTX_NEW) and every CTX_TEMP from them asks for Echo first', (t) => {
  const ledger = new NonceLedger();
  const cd = tempDirectory('restart-client');
  const sd = tempDirectory('restart-server');
  t.after(() => (cd.remove(), sd.remove()));
  const client = new Peer({ identity: CLIENT_IDENTITY, directory: cd.path, ledger });
  const server = new Peer({ identity: SERVER_IDENTITY, directory: sd.path, ledger });

  // Before any crash no window is unknown: no challenge.
  assert.equal(sendRequest(client, server, request('app')).challenged, false);
  const recorded = client.session.protectRequest(request('app', 'recorded'));
  assert.ok(server.unprotectRequest(recorded.message).ok);
  server.crash();
  const replayed = server.unprotectRequest(recorded.message);
  assert.ok(!replayed.ok && replayed.challenge, 'CTX_OLD: challenge');
  assert.equal(replayed.challenge.via, 'current');
  // An Echo value is not proof of freshness unless this server instance issued it.
  const forged = client.session.protectRequest({ ...request('app'), options: [...request('app').options, { number: OptionNumber.Echo, value: new Uint8Array(8) }] });
  const refused = server.unprotectRequest(forged.message);
  assert.ok(!refused.ok && refused.challenge, 'an Echo value the server never issued proves nothing');
  assert.equal(sendRequest(client, server, request('app')).challenged, true);
  assert.equal(sendRequest(client, server, request('app')).challenged, false, 'the window is set');

  // A divergent request to a rebooted server (CTX_TEMP from the restored CTX_OLD).
  server.crash();
  const divergent = sendRequest(client, server, request('.well-known/kudos'), true);
  assert.ok(divergent.challenged && divergent.received.ok);
  assert.equal(server.session.state, 'PENDING');
  const answer = server.session.protectResponse(response(divergent.received.message), divergent.received.request);
  assert.ok(client.session.unprotectResponse(answer.message, divergent.sent.outgoing).ok);
  assert.equal(client.session.state, 'IDLE');
  // PENDING resumed: the key confirmation under CTX_NEW is challenged under CTX_NEW, then completes.
  server.crash();
  assert.equal(server.session.state, 'PENDING');
  const confirm = sendRequest(client, server, request('confirm'));
  assert.ok(confirm.challenged && confirm.received.ok);
  assert.equal(server.session.state, 'IDLE');
  assert.ok(sameContext(client.session, server.session));
  assert.deepEqual(ledger.reused, []);
});
