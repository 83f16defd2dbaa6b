/**
 * No-FS mode and replayed divergent messages (draft-ietf-core-oscore-key-update §4.4.2): every
 * no-FS execution derives its CTX_TEMPs from the same CTX_BOOTSTRAP, so a divergent message
 * recorded in any earlier execution still decrypts. Replayed, it must not start an execution again:
 * one from the execution that made the current context is refused (its nonce is in the current
 * Master Salt), one from a recent execution by the replay window kept for its CTX_TEMP, an older
 * one is answered with a B.1.2 Echo challenge that its sender cannot answer — and in every case
 * the state, the context and the record stay as they were.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CoapMessage } from '../src/coap/message.js';
import { BOOTSTRAP, CLIENT_IDENTITY, NonceLedger, Peer, SERVER_IDENTITY, echoOf, hex, request, response, sameContext, sendRequest, tempDirectory, withEcho } from './kudos-helpers.js';

function noFsPair(t: { after: (fn: () => void) => void }) {
  const ledger = new NonceLedger();
  const clientDir = tempDirectory('nofs-client');
  const serverDir = tempDirectory('nofs-server');
  t.after(() => {
    clientDir.remove();
    serverDir.remove();
  });
  const client = new Peer({ identity: CLIENT_IDENTITY, directory: clientDir.path, ledger, initial: { peerCapability: 'non-capable', bootstrap: BOOTSTRAP } });
  const server = new Peer({ identity: SERVER_IDENTITY, directory: serverDir.path, ledger, initial: { bootstrap: BOOTSTRAP } });
  return { client, server, ledger, serverDir: serverDir.path };
}

/**
 * One no-FS update started by the client; returns what an on-path attacker records of it: the
 * divergent request, and (when the server challenged it, B.1.2) the same request with the Echo value.
 */
function update(client: Peer, server: Peer): CoapMessage[] {
  const recorded: CoapMessage[] = [];
  let sent = client.session.protectRequest(request('.well-known/kudos'), { startKudos: true });
  recorded.push(sent.message);
  let received = server.unprotectRequest(sent.message);
  if (!received.ok && received.challenge) {
    const challenge = client.session.unprotectResponse(server.challenge(received.challenge), sent.outgoing);
    assert.ok(challenge.ok, !challenge.ok ? challenge.reason : '');
    sent = client.session.protectRequest(withEcho(request('.well-known/kudos'), echoOf(challenge.message)!));
    recorded.push(sent.message);
    received = server.unprotectRequest(sent.message);
  }
  assert.ok(received.ok, !received.ok ? received.reason : '');
  const answer = server.session.protectResponse(response(received.message), received.request);
  assert.ok(client.session.unprotectResponse(answer.message, sent.outgoing).ok);
  const confirm = sendRequest(client, server, request('confirm'));
  assert.ok(confirm.received.ok);
  assert.equal(server.session.state, 'IDLE');
  assert.ok(sameContext(client.session, server.session));
  return recorded;
}

const recordOf = (directory: string): string => readFileSync(join(directory, readdirSync(directory)[0]!), 'utf8');

test('a no-FS divergent request replayed after its execution completed does not start another one', (t) => {
  const { client, server, ledger, serverDir } = noFsPair(t);
  const first = update(client, server);
  const second = update(client, server);
  const context = hex(server.session.currentSecrets.masterSecret);
  const record = recordOf(serverDir);
  for (const replayed of [...second, ...first]) {
    const result = server.unprotectRequest(replayed);
    assert.equal(result.ok, false, 'a replayed divergent request is not processed');
    assert.equal(server.session.state, 'IDLE', 'and the state does not move');
    assert.equal(hex(server.session.currentSecrets.masterSecret), context);
    assert.equal(recordOf(serverDir), record, 'nothing is written');
  }
  for (const replayed of second) {
    const latest = server.unprotectRequest(replayed);
    assert.ok(!latest.ok && /stale/.test(latest.reason), 'the nonce of the execution that made the current context is recognised');
  }
  for (const replayed of first) {
    const older = server.unprotectRequest(replayed);
    assert.ok(!older.ok && !older.challenge, `an earlier execution's message is refused by its window: ${!older.ok && older.reason}`);
  }
  // Traffic still flows on the current context, and a new update still works.
  assert.ok(sendRequest(client, server, request('after')).received.ok);
  update(client, server);
  assert.deepEqual(ledger.reused, []);
});

test('a no-FS divergent request older than the windows kept gets an Echo challenge its sender cannot answer; the genuine peer can', (t) => {
  const { client, server } = noFsPair(t);
  const first = update(client, server);
  for (let i = 0; i < 5; i++) update(client, server);
  const replayed = server.unprotectRequest(first[0]!);
  assert.ok(!replayed.ok && replayed.challenge, 'freshness unknown: challenged (B.1.2), not acted on');
  assert.equal(server.session.state, 'IDLE');
  // The genuine client's new no-FS divergent request: challenged once, then accepted with the echo.
  const { received, challenged } = sendRequest(client, server, request('.well-known/kudos'), true);
  assert.ok(challenged, 'its first divergent request was challenged');
  assert.ok(received.ok, !received.ok ? received.reason : '');
  assert.equal(server.session.state, 'PENDING');
});
