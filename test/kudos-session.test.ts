/**
 * The KUDOS exchange between two in-process peers (draft-ietf-core-oscore-key-update §4.3, App. A/B):
 * both flows, simultaneous start, the §4.3.4 optimisation, observations, no-FS mode, retention, the
 * refusal of replayed and stale KUDOS messages, and a crash (memory dropped, state reloaded from the
 * directory) in each state.
 */
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, readdirSync } from 'node:fs';
import type { CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { decodeOscoreOption, decodePartialIv } from '../src/oscore/index.js';
import { parseXByte, updateCtx } from '../src/kudos/index.js';
import {
  BOOTSTRAP, CLIENT_IDENTITY, MASTER_SECRET, MASTER_SALT, NonceLedger, Peer, type PeerConfig, SERVER_IDENTITY,
  hex, request, response, sameContext, sendRequest, tempDirectory, text,
} from './kudos-helpers.js';

function pair(t: { after: (fn: () => void) => void }, options: { client?: Partial<PeerConfig>; server?: Partial<PeerConfig> } = {}) {
  const ledger = new NonceLedger();
  const cd = tempDirectory('client');
  const sd = tempDirectory('server');
  t.after(() => {
    cd.remove();
    sd.remove();
  });
  const client = new Peer({ identity: CLIENT_IDENTITY, directory: cd.path, ledger, ...options.client });
  const server = new Peer({ identity: SERVER_IDENTITY, directory: sd.path, ledger, ...options.server });
  return { client, server, ledger, clientDir: cd.path, serverDir: sd.path };
}

const kudosX = (m: CoapMessage): number | undefined => decodeOscoreOption(m.options.find((o) => o.number === OptionNumber.Oscore)!.value).kudos?.x;
const piv = (m: CoapMessage): number | undefined => {
  const p = decodeOscoreOption(m.options.find((o) => o.number === OptionNumber.Oscore)!.value).piv;
  return p === undefined ? undefined : decodePartialIv(p);
};

/** client → server request, server → client response; returns both sides' results. */
function roundTrip(client: Peer, server: Peer, path: string, opts: { clientStarts?: boolean; serverStarts?: boolean } = {}) {
  // A peer that restarted first answers with a B.1.2 Echo challenge (sendRequest takes that round trip).
  const { sent, received } = sendRequest(client, server, request(path, `to ${path}`), opts.clientStarts ?? false);
  assert.ok(received.ok, `server refused: ${!received.ok && received.reason}`);
  const answer = server.session.protectResponse(response(received.message, `from ${path}`), received.request, { startKudos: opts.serverStarts ?? false });
  server.note(answer.events);
  const back = client.session.unprotectResponse(answer.message, sent.outgoing);
  client.note(back.events);
  assert.ok(back.ok, `client refused: ${!back.ok && back.reason}`);
  return { request: sent.message, response: answer.message, atServer: received, atClient: back };
}

test('forward flow (A.1): divergent request, convergent response, key confirmation by the next request', (t) => {
  const { client, server, ledger } = pair(t);
  const first = roundTrip(client, server, '.well-known/kudos', { clientStarts: true });
  assert.deepEqual(parseXByte(kudosX(first.request)!), { convergent: false, preserveObservations: false, noForwardSecrecy: false });
  assert.equal(parseXByte(kudosX(first.response)!).convergent, true);
  // §3: the response is protected with CTX_NEW, the request with CTX_TEMP: it carries its own Partial IV.
  assert.equal(piv(first.response), 0);
  assert.equal(client.session.state, 'IDLE');
  assert.equal(server.session.state, 'PENDING');
  assert.ok(server.session.holdsTraffic);
  assert.deepEqual(client.events.filter((e) => e.type !== 'send-convergent').map((e) => e.type === 'state' ? `${e.from}>${e.to}` : e.type), ['IDLE>BUSY', 'BUSY>IDLE', 'completed']);
  const second = roundTrip(client, server, 'temp');
  assert.equal(kudosX(second.request), undefined, 'a non KUDOS message under CTX_NEW');
  assert.equal(text(second.atClient.ok ? second.atClient.message : request('')), 'from temp');
  assert.equal(server.session.state, 'IDLE');
  assert.ok(server.events.some((e) => e.type === 'completed' && !e.preserveObservations));
  assert.ok(sameContext(client.session, server.session));
  assert.notEqual(hex(client.session.currentSecrets.masterSecret), hex(MASTER_SECRET));
  assert.deepEqual(ledger.reused, []);
});

test('reverse flow (A.2): the server answers with a divergent response, the client converges in its next request', (t) => {
  const { client, server, ledger } = pair(t);
  roundTrip(client, server, 'temp', { serverStarts: true });
  assert.equal(server.session.state, 'BUSY');
  assert.equal(client.session.state, 'PENDING');
  assert.ok(client.events.some((e) => e.type === 'send-convergent'));
  const second = roundTrip(client, server, 'temp');
  assert.equal(parseXByte(kudosX(second.request)!).convergent, true);
  assert.equal(kudosX(second.response), undefined);
  assert.equal(client.session.state, 'IDLE');
  assert.equal(server.session.state, 'IDLE');
  assert.ok(sameContext(client.session, server.session));
  roundTrip(client, server, 'after');
  assert.deepEqual(ledger.reused, []);
});

test('both peers start at once (A.6): two divergent requests, the same CTX_NEW on both sides', (t) => {
  const { client, server, ledger } = pair(t);
  const fromClient = client.session.protectRequest(request('.well-known/kudos'), { startKudos: true });
  const fromServer = server.session.protectRequest(request('.well-known/kudos'), { startKudos: true });
  const atServer = server.session.unprotectRequest(fromClient.message);
  const atClient = client.session.unprotectRequest(fromServer.message);
  assert.ok(atServer.ok && atClient.ok);
  assert.equal(server.session.state, 'PENDING');
  assert.equal(client.session.state, 'PENDING');
  const toClient = server.session.protectResponse(response(atServer.message), atServer.request);
  const toServer = client.session.protectResponse(response(atClient.message), atClient.request);
  assert.ok(client.session.unprotectResponse(toClient.message, fromClient.outgoing).ok);
  assert.ok(server.session.unprotectResponse(toServer.message, fromServer.outgoing).ok);
  assert.equal(client.session.state, 'IDLE');
  assert.equal(server.session.state, 'IDLE');
  assert.ok(sameContext(client.session, server.session));
  roundTrip(client, server, 'after');
  assert.deepEqual(ledger.reused, []);
});

test('§4.3.4: a repeated divergent message with the same nonce keeps PENDING; a new nonce aborts and starts over', (t) => {
  const { client, server, ledger } = pair(t);
  const a = client.session.protectRequest(request('.well-known/kudos'), { startKudos: true });
  assert.ok(server.session.unprotectRequest(a.message).ok);
  const newAfterFirst = hex(server.session.state === 'PENDING' ? Uint8Array.of(1) : Uint8Array.of(0));
  // The convergent response is lost; the client sends another divergent message under the same CTX_TEMP.
  const b = client.session.protectRequest(request('.well-known/kudos'));
  assert.equal(decodeOscoreOption(b.message.options.find((o) => o.number === OptionNumber.Oscore)!.value).kudos?.nonce.toString(),
    decodeOscoreOption(a.message.options.find((o) => o.number === OptionNumber.Oscore)!.value).kudos?.nonce.toString());
  const again = server.session.unprotectRequest(b.message);
  assert.ok(again.ok);
  assert.deepEqual(again.events, [{ type: 'send-convergent' }], 'stays in PENDING, no abort');
  assert.equal(newAfterFirst, '01');
  // A third divergent message with the first nonce is held back by the network.
  const withheld = client.session.protectRequest(request('.well-known/kudos'));
  // Now the client gives up and starts over with a new nonce: the server aborts its CTX_NEW.
  client.session.abandon();
  const c = client.session.protectRequest(request('.well-known/kudos'), { startKudos: true });
  const fresh = server.session.unprotectRequest(c.message);
  assert.ok(fresh.ok);
  assert.ok(fresh.events.some((e) => e.type === 'aborted'));
  // The held-back message arrives late: its nonce was superseded, so it is refused instead of
  // aborting the execution again (authentic, fresh Partial IV, but from a pair the peer deleted).
  const lateOld = server.session.unprotectRequest(withheld.message);
  assert.equal(lateOld.ok, false);
  assert.match(!lateOld.ok ? lateOld.reason : '', /stale/);
  assert.deepEqual(lateOld.events, []);
  const answer = server.session.protectResponse(response(fresh.message), fresh.request);
  assert.ok(client.session.unprotectResponse(answer.message, c.outgoing).ok);
  roundTrip(client, server, 'after');
  assert.ok(sameContext(client.session, server.session));
  // The divergent message of the abandoned attempt is now stale: refused, state unchanged.
  const stale = server.session.unprotectRequest(a.message);
  assert.equal(stale.ok, false);
  assert.deepEqual(ledger.reused, []);
});

test('a replayed divergent message and a KUDOS message from a stale context are refused', (t) => {
  const { client, server, clientDir } = pair(t);
  const staleDir = tempDirectory('stale');
  t.after(staleDir.remove);
  // A copy of the client as it was before the update: it still holds CTX_OLD.
  cpSync(clientDir, staleDir.path, { recursive: true });
  const first = roundTrip(client, server, '.well-known/kudos', { clientStarts: true });
  // Replay while PENDING: the window of the peer's CTX_TEMP has the Partial IV.
  const replayed = server.session.unprotectRequest(first.request);
  assert.equal(replayed.ok, false);
  assert.match(!replayed.ok ? replayed.reason : '', /Replay/);
  roundTrip(client, server, 'confirm');
  assert.equal(server.session.state, 'IDLE');
  // Replay after completion: CTX_TEMP came from CTX_OLD, which is gone.
  const late = server.session.unprotectRequest(first.request);
  assert.equal(late.ok, false);
  assert.equal(!late.ok && late.code, 0x80, 'RFC 8613 §8.2: decryption failed, 4.00');
  // A fresh divergent message from a peer still on CTX_OLD: refused, and the server stays IDLE on CTX_NEW.
  const staleClient = new Peer({ identity: CLIENT_IDENTITY, directory: staleDir.path, ledger: new NonceLedger() });
  const staleKudos = staleClient.session.protectRequest(request('.well-known/kudos'), { startKudos: true });
  const refused = server.session.unprotectRequest(staleKudos.message);
  assert.equal(refused.ok, false);
  assert.deepEqual(refused.events, []);
  assert.equal(server.session.state, 'IDLE');
  // And a convergent message from a stale execution never confirms anything.
  roundTrip(client, server, 'still works');
});

test("observations: kept only when every 'b' is 1, and then the client's Sender Sequence Number jumps past PIV* (§4.5.1)", (t) => {
  const keep = pair(t, {
    client: { options: { preserveObservations: true, observationPartialIvs: () => [3, 41] } },
    server: { options: { preserveObservations: true } },
  });
  roundTrip(keep.client, keep.server, '.well-known/kudos', { clientStarts: true });
  assert.ok(keep.client.events.some((e) => e.type === 'completed' && e.preserveObservations));
  const next = roundTrip(keep.client, keep.server, 'temp');
  assert.equal(piv(next.request), 42);
  assert.ok(keep.server.events.some((e) => e.type === 'completed' && e.preserveObservations));

  const drop = pair(t, { client: { options: { preserveObservations: true } } });
  const first = roundTrip(drop.client, drop.server, '.well-known/kudos', { clientStarts: true });
  assert.equal(parseXByte(kudosX(first.response)!).preserveObservations, false);
  assert.ok(drop.client.events.some((e) => e.type === 'completed' && !e.preserveObservations));
});

test('no-FS mode (§4.4): CTX_IN is the bootstrap context from storage; a CAPABLE peer refuses the downgrade', (t) => {
  // Fixed nonces for the first run (to check the derivation), random ones after: equal nonces would
  // give equal keys in no-FS mode, whose CTX_IN never changes — the ledger below would catch it.
  const fixed = (byte: number) => {
    let calls = 0;
    return (n: number) => (calls++ === 0 ? new Uint8Array(n).fill(byte) : Uint8Array.from(randomBytes(n)));
  };
  const nofs = pair(t, {
    client: { initial: { peerCapability: 'non-capable', bootstrap: BOOTSTRAP }, random: fixed(0x11) },
    server: { initial: { bootstrap: BOOTSTRAP }, random: fixed(0x22) },
  });
  const first = roundTrip(nofs.client, nofs.server, '.well-known/kudos', { clientStarts: true });
  assert.equal(parseXByte(kudosX(first.request)!).noForwardSecrecy, true);
  assert.equal(parseXByte(kudosX(first.response)!).noForwardSecrecy, true, 'the follow-up keeps p = 1');
  roundTrip(nofs.client, nofs.server, 'confirm');
  assert.ok(sameContext(nofs.client.session, nofs.server.session));
  const expected = updateCtx(Uint8Array.of(0x17, ...new Uint8Array(8).fill(0x11)), Uint8Array.of(0x17, ...new Uint8Array(8).fill(0x22)), {
    ...CLIENT_IDENTITY, ...BOOTSTRAP,
  });
  assert.equal(hex(nofs.client.session.currentSecrets.masterSecret), hex(expected.masterSecret), 'derived from the bootstrap secret, not CTX_OLD');
  // A second no-FS run starts again from the bootstrap material (which stayed on disk), after a crash too.
  nofs.server.crash();
  roundTrip(nofs.client, nofs.server, '.well-known/kudos', { clientStarts: true });
  roundTrip(nofs.client, nofs.server, 'confirm');
  assert.ok(sameContext(nofs.client.session, nofs.server.session));
  assert.deepEqual(nofs.ledger.reused, []);

  // A server that learned the client is CAPABLE (p = 0 seen) refuses a later p = 1 message.
  const fs = pair(t, { client: { initial: { bootstrap: BOOTSTRAP } }, server: { initial: { bootstrap: BOOTSTRAP } } });
  roundTrip(fs.client, fs.server, '.well-known/kudos', { clientStarts: true });
  roundTrip(fs.client, fs.server, 'confirm');
  assert.equal(fs.server.session.peerCapability, 'capable');
  fs.server.crash();
  assert.equal(fs.server.session.peerCapability, 'capable', 'stored on disk (§4.4.2)');
  const downgraded = new Peer({ identity: CLIENT_IDENTITY, directory: tempDirectory('downgrade').path, ledger: new NonceLedger(), initial: { peerCapability: 'non-capable', bootstrap: BOOTSTRAP } });
  const attempt = downgraded.session.protectRequest(request('.well-known/kudos'), { startKudos: true });
  const refused = fs.server.session.unprotectRequest(attempt.message);
  assert.equal(refused.ok, false);
  assert.match(!refused.ok ? refused.reason : '', /downgrade/);
});

test('retention (§4.6): a late non KUDOS request under CTX_OLD is accepted until the policy time is up', (t) => {
  let now = 1000;
  const { client, server } = pair(t, { server: { options: { retainOldMs: 500, now: () => now } } });
  const late = client.session.protectRequest(request('late'));
  const later = client.session.protectRequest(request('later'));
  roundTrip(client, server, '.well-known/kudos', { clientStarts: true });
  roundTrip(client, server, 'confirm');
  const accepted = server.session.unprotectRequest(late.message);
  assert.ok(accepted.ok);
  assert.equal(accepted.ok && accepted.request.via, 'retained');
  now += 501;
  assert.equal(server.session.unprotectRequest(later.message).ok, false);
});

test('crash in BUSY (the initiator): its CTX_TEMP and nonce are gone; a new run completes with fresh nonces', (t) => {
  const { client, server, ledger } = pair(t);
  const lost = client.session.protectRequest(request('.well-known/kudos'), { startKudos: true });
  assert.ok(server.session.unprotectRequest(lost.message).ok);
  client.crash();
  assert.equal(client.session.state, 'IDLE');
  assert.equal(hex(client.session.currentSecrets.masterSecret), hex(MASTER_SECRET), 'aborted cleanly on CTX_OLD');
  roundTrip(client, server, '.well-known/kudos', { clientStarts: true });
  roundTrip(client, server, 'confirm');
  assert.ok(sameContext(client.session, server.session));
  assert.deepEqual(ledger.reused, []);
});

test('crash in PENDING (the responder) with the convergent response lost: resumes PENDING and completes', (t) => {
  const { client, server, ledger } = pair(t);
  const a = client.session.protectRequest(request('.well-known/kudos'), { startKudos: true });
  const atServer = server.session.unprotectRequest(a.message);
  assert.ok(atServer.ok);
  server.session.protectResponse(response(atServer.message), atServer.request); // lost
  server.crash();
  assert.equal(server.session.state, 'PENDING');
  roundTrip(client, server, '.well-known/kudos'); // the client, still BUSY, sends again under CTX_TEMP
  roundTrip(client, server, 'confirm');
  assert.equal(server.session.state, 'IDLE');
  assert.ok(sameContext(client.session, server.session));
  assert.deepEqual(ledger.reused, [], 'CTX_NEW resumed above its reservation');
});

test('crash in PENDING (the responder) after its convergent response arrived: completes on the next request', (t) => {
  const { client, server, ledger } = pair(t);
  const a = client.session.protectRequest(request('.well-known/kudos'), { startKudos: true });
  const atServer = server.session.unprotectRequest(a.message);
  assert.ok(atServer.ok);
  const conv = server.session.protectResponse(response(atServer.message), atServer.request);
  server.crash();
  assert.ok(client.session.unprotectResponse(conv.message, a.outgoing).ok);
  roundTrip(client, server, 'confirm');
  assert.ok(sameContext(client.session, server.session));
  assert.deepEqual(ledger.reused, []);
});

test('crash in PENDING (the reverse-flow client) and in IDLE after completion: traffic resumes without nonce reuse', (t) => {
  const { client, server, ledger } = pair(t);
  roundTrip(client, server, 'temp', { serverStarts: true });
  assert.equal(client.session.state, 'PENDING');
  client.crash();
  assert.equal(client.session.state, 'PENDING');
  roundTrip(client, server, 'temp');
  assert.equal(client.session.state, 'IDLE');
  client.crash();
  server.crash();
  for (let i = 0; i < 6; i++) roundTrip(client, server, `after-${i}`);
  assert.ok(sameContext(client.session, server.session));
  assert.deepEqual(ledger.reused, []);
  assert.ok(ledger.seen.size >= 14);
});

test('the state file never holds CTX_TEMP or an unused nonce, only contexts with reservations', (t) => {
  const { client, server } = pair(t);
  const a = client.session.protectRequest(request('.well-known/kudos'), { startKudos: true });
  const x = decodeOscoreOption(a.message.options.find((o) => o.number === OptionNumber.Oscore)!.value).kudos!;
  assert.ok(server.session.unprotectRequest(a.message).ok);
  assert.ok(!readState(client).includes(hex(x.nonce)), 'the initiator has not written its nonce');
  assert.ok(readState(server).includes(hex(x.nonce)), 'the responder wrote CTX_NEW, whose salt holds both nonces');
  assert.match(readState(server), /"reservedUpTo":\d+/);
  assert.ok(readState(client).includes(hex(MASTER_SALT)), 'the initiator still holds only CTX_OLD');
});

function readState(peer: Peer): string {
  const dir = peer.config.directory;
  return readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => readFileSync(`${dir}/${f}`, 'utf8')).join('\n');
}

test('two PENDING peers on different CTX_NEWs (the responder rebooted in BUSY) converge on the one holding both current nonces', (t) => {
  const { client, server, ledger } = pair(t);
  const fromServer = server.session.protectRequest(request('.well-known/kudos'), { startKudos: true }); // held by the network
  server.crash(); // the server's nonce S2 is gone with its memory
  // The rebooted server challenges the divergent request first (B.1.2); the client, still BUSY, repeats it with the same nonce.
  const { sent: fromClient, received: atServer, challenged } = sendRequest(client, server, request('.well-known/kudos'), true);
  assert.ok(challenged && atServer.ok);
  const convergent = server.session.protectResponse(response(atServer.message), atServer.request); // CTX_NEW = f(P1, S1)
  const atClient = client.session.unprotectRequest(fromServer.message); // the late S2: the client goes to f(P1, S2)
  assert.ok(atClient.ok);
  assert.equal(client.session.state, 'PENDING');
  assert.equal(server.session.state, 'PENDING');
  // The client's convergent answer to S2 finds no listener at the server (it forgot that request).
  client.session.protectResponse(response(atClient.message), atClient.request);
  // The server's convergent response built on P1 and S1 confirms f(P1, S1) at the client.
  const back = client.session.unprotectResponse(convergent.message, fromClient.outgoing);
  assert.ok(back.ok, !back.ok ? back.reason : '');
  assert.equal(client.session.state, 'IDLE');
  roundTrip(client, server, 'confirm');
  assert.equal(server.session.state, 'IDLE');
  assert.ok(sameContext(client.session, server.session));
  assert.deepEqual(ledger.reused, []);
});

test('a peer that keeps §4.3.7 and comes back under CTX_OLD (it crashed in BUSY) makes a PENDING responder abort on CTX_OLD', (t) => {
  for (const peerKeepsQuiet of [true, false]) {
    const { client, server, ledger } = pair(t, { server: { options: { peerKeepsQuiet } } });
    const divergent = client.session.protectRequest(request('.well-known/kudos'), { startKudos: true });
    const received = server.session.unprotectRequest(divergent.message);
    assert.ok(received.ok);
    server.session.protectResponse(response(received.message), received.request); // the convergent response, lost
    assert.equal(server.session.state, 'PENDING');
    client.crash(); // BUSY and its nonce are gone: the client is IDLE on CTX_OLD
    const sent = client.session.protectRequest(request('app'));
    const atServer = server.session.unprotectRequest(sent.message);
    assert.ok(atServer.ok);
    const answer = server.session.protectResponse(response(atServer.message, 'hello'), atServer.request);
    const back = client.session.unprotectResponse(answer.message, sent.outgoing);
    if (peerKeepsQuiet) {
      assert.ok(back.ok, 'answered under CTX_OLD');
      assert.equal(server.session.state, 'IDLE');
      assert.ok(sameContext(client.session, server.session));
      assert.ok(atServer.events.some((e) => e.type === 'aborted'));
    } else {
      // Without the assumption the responder stays PENDING and answers under a CTX_NEW the client lacks.
      assert.equal(back.ok, false);
      assert.equal(server.session.state, 'PENDING');
    }
    assert.deepEqual(ledger.reused, []);
  }
});
