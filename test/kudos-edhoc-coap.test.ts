/**
 * KUDOS support signalled in EDHOC's EAD (draft-ietf-core-oscore-key-update §4.8) end to end over
 * CoAP on real UDP sockets (127.0.0.1, port 0): EdhocClientSecurity and EdhocServer with `kudos`
 * carry KUDOS_EAD (ASK in message_1, the answer in message_2 and message_3), each side records the
 * other's support, and a KUDOS session provisioned from it runs an update on the EDHOC-derived
 * context (FULL), is not started (NONE), or is limited to no-FS mode (PART). Both flows.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { CoapClient } from '../src/client/client.js';
import { OscoreClientSecurity } from '../src/client/oscore.js';
import { ResponseCode } from '../src/coap/codes.js';
import type { EdhocSession } from '../src/edhoc/session.js';
import { EdhocInitiator, type EadItem } from '../src/edhoc/index.js';
import { EdhocClientSecurity, EdhocServer, postOverClient, prefixNewSession, type EdhocServerOptions } from '../src/edhoc-coap/index.js';
import { KUDOS_EAD_LABEL, KudosClientPeer, KudosFileStorage, kudosEadAsk, readKudosEad, KudosServerSecurity, kudosResource, type KudosSession, type KudosSupport } from '../src/kudos/index.js';
import { kudosSessionForEdhoc } from '../src/edhoc-coap/index.js';
import type { OscoreSecurityContext } from '../src/oscore/security-context.js';
import { CoapServer } from '../src/server/server.js';
import { tempDirectory } from './kudos-helpers.js';
import { edhocPeers } from './support/edhoc-peers.js';

const closers: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

interface Established {
  session: EdhocSession;
  context: OscoreSecurityContext;
  peerKudos: KudosSupport | undefined;
}

/** An EDHOC server (Responder, and Initiator of the reverse flow) with `kudos`; KUDOS in front of it for each context EDHOC made with a KUDOS peer. */
async function serve(peers: ReturnType<typeof edhocPeers>, kudos: KudosSupport | undefined, storage: string) {
  const server = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
  closers.push(() => server.close());
  server.add(kudosResource());
  server.resource('/echo', { POST: (request) => ({ code: ResponseCode.Changed, payload: request.payload }) }, { requireOscore: true });
  const established: Established[] = [];
  const kudosSessions: KudosSession[] = [];
  const options: EdhocServerOptions = {
    responder: peers.responder,
    initiator: peers.initiator,
    ...(kudos !== undefined ? { kudos } : {}),
    onEstablished: (session, context, peerKudos) => {
      established.push({ session, context, peerKudos });
      const kudosSession = peerKudos && kudosSessionForEdhoc(session, peerKudos, { storage: (identity) => new KudosFileStorage(`${storage}/server`, identity), retainOldMs: 5000 });
      if (kudosSession === undefined) return;
      kudosSessions.push(kudosSession);
      server.security = new KudosServerSecurity([{ name: 'client', session: kudosSession, recipientId: context.primaryRecipient.params.recipientId }], { fallback: edhoc });
    },
  };
  const edhoc = EdhocServer.attach(server, options);
  return { established, kudosSessions, origin: `coap://127.0.0.1:${server.address().port}` };
}

async function setUp(client: KudosSupport | undefined, server: KudosSupport | undefined, flow: 'forward' | 'reverse' = 'forward') {
  const dir = tempDirectory('kudos-edhoc-coap');
  closers.push(dir.remove);
  const peers = edhocPeers(3, 2);
  // In the reverse flow the server is the Initiator and the client the Responder (RFC 9528 A.2.2).
  const reversed = edhocPeers(3, 2, { names: ['server', 'client'] });
  const served = await serve(flow === 'forward' ? peers : { initiator: reversed.initiator, responder: peers.responder }, server, dir.path);
  const coap = new CoapClient({ bindIpv4: '127.0.0.1' });
  closers.push(() => coap.close());
  const security = new EdhocClientSecurity({
    ...(flow === 'forward' ? { initiator: peers.initiator } : { responder: reversed.responder }),
    post: postOverClient(coap, served.origin),
    ...(client !== undefined ? { kudos: client } : {}),
  });
  await security.establish();
  return { ...served, coap, security, dir: dir.path };
}

describe('KUDOS support signalled in EDHOC over CoAP (§4.8)', () => {
  it('both support FULL: each records FULL, and a KUDOS update runs on the EDHOC-derived context', async () => {
    const { security, established, kudosSessions, coap, origin, dir } = await setUp('full', 'full');
    assert.equal(security.peerKudos, 'full', 'the client (Initiator) records the server\'s FULL from message_2');
    assert.equal(established.length, 1);
    assert.equal(established[0]!.peerKudos, 'full', 'the server (Responder) records the client\'s FULL from message_3');
    const clientSession = kudosSessionForEdhoc(security.session!, security.peerKudos!, { storage: (identity) => new KudosFileStorage(`${dir}/client`, identity) });
    assert.ok(clientSession !== undefined);
    assert.equal(clientSession.peerCapability, 'capable');
    assert.equal(kudosSessions[0]!.peerCapability, 'capable');
    const oscore = new OscoreClientSecurity(security.context!);
    const peer = new KudosClientPeer(clientSession, oscore.requester, { send: (s) => coap.request({ method: 'POST', uri: `${origin}/.well-known/kudos`, security: s }) });
    const before = clientSession.currentSecrets.masterSecret;
    await peer.rekey();
    assert.notDeepEqual(clientSession.currentSecrets.masterSecret, before, 'the update gave the context a new Master Secret');
    // The next request under the new context is the server's key confirmation (§4.3.1).
    const echoed = await coap.request({ method: 'POST', uri: `${origin}/echo`, payload: 'after KUDOS', security: oscore });
    assert.equal(echoed.text(), 'after KUDOS');
    assert.equal(kudosSessions[0]!.state, 'IDLE');
    assert.deepEqual(kudosSessions[0]!.currentSecrets.masterSecret, clientSession.currentSecrets.masterSecret, 'both peers hold the same new context');
  });

  it('a server without KUDOS support: the client records NONE and starts no KUDOS with it', async () => {
    const { security, established, kudosSessions } = await setUp('full', undefined);
    assert.equal(security.peerKudos, 'none', 'the server ignored ASK (non-critical) and said nothing');
    assert.equal(established[0]!.peerKudos, undefined, 'the server signals nothing and records nothing');
    assert.equal(kudosSessionForEdhoc(security.session!, security.peerKudos!, { storage: () => assert.fail('no KUDOS storage for a NONE peer') }), undefined);
    assert.equal(kudosSessions.length, 0);
  });

  it('a server that says NONE: the client records NONE and does not answer in message_3 (Figure 4)', async () => {
    const { security, established, kudosSessions } = await setUp('full', 'none');
    assert.equal(security.peerKudos, 'none');
    assert.equal(established[0]!.peerKudos, 'none', 'no KUDOS_EAD in message_3 after NONE');
    assert.equal(kudosSessions.length, 0);
  });

  it('a server that supports no-FS mode only: the client records PART and its KUDOS session is not FS-capable', async () => {
    const { security, established, kudosSessions, dir } = await setUp('full', 'part');
    assert.equal(security.peerKudos, 'part');
    assert.equal(established[0]!.peerKudos, 'full');
    const clientSession = kudosSessionForEdhoc(security.session!, 'part', { storage: (identity) => new KudosFileStorage(`${dir}/client`, identity) });
    assert.equal(clientSession?.peerCapability, 'non-capable', 'no-FS mode only with this server');
    assert.equal(kudosSessions[0]!.peerCapability, 'capable');
  });

  it('a client without `kudos` sends no ASK; a server with it still says its support (MAY), which the client ignores', async () => {
    const { security, established } = await setUp(undefined, 'full');
    assert.equal(security.peerKudos, undefined);
    assert.equal(established[0]!.peerKudos, 'none');
  });

  it('a message_1 whose KUDOS_EAD is not ASK: the server ignores it and says nothing in message_2; an unknown non-critical item is ignored too', async () => {
    const dir = tempDirectory('kudos-edhoc-coap');
    closers.push(dir.remove);
    const peers = edhocPeers(3, 2);
    const { origin } = await serve(peers, 'full', dir.path);
    const coap = new CoapClient({ bindIpv4: '127.0.0.1' });
    closers.push(() => coap.close());
    const message2Items = async (ead: EadItem[]) => {
      const { state, message } = new EdhocInitiator(peers.initiator).prepareMessage1({ connectionId: Uint8Array.of(0x21), ead });
      const reply = await postOverClient(coap, origin)(prefixNewSession(message));
      assert.equal(reply.code, ResponseCode.Changed);
      return state.processMessage2(reply.payload).ead2;
    };
    const unknown: EadItem = { label: 40_000, value: Uint8Array.of(1, 2) };
    assert.deepEqual(await message2Items([{ label: KUDOS_EAD_LABEL, value: Uint8Array.of(0x01) }, unknown]), [], '§4.8: FULL in message_1 is ignored, and no KUDOS_EAD follows');
    assert.equal(readKudosEad(await message2Items([unknown, kudosEadAsk()]), 2), 'full', 'ASK beside an unknown non-critical item is answered');
  });

  it('reverse flow (A.2.2): the server asks in message_1, the client answers in message_2, the server in message_3', async () => {
    const { security, established } = await setUp('part', 'full', 'reverse');
    assert.equal(established[0]!.peerKudos, 'part', 'the server (Initiator) records the client\'s PART from message_2');
    assert.equal(security.peerKudos, 'full', 'the client (Responder) records the server\'s FULL from message_3');
  });
});
