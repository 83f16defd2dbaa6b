/**
 * The server's inbound path is one ordered list of stages (src/server/stages/index.ts): the order
 * is a contract (docs/architecture.md), and a stage added to the list runs at its place — after
 * the stages before it (which may answer first), before the ones after it, and its answers go out
 * through the response side of the stages before it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { MessageType, encodeUint, getOption, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { protectRequest, unprotectResponse } from '../src/oscore/protect.js';
import { OscoreSecurityContext, VolatileSequence } from '../src/oscore/security-context.js';
import { OscoreServerSecurity } from '../src/server/oscore.js';
import { CoapServer, toMessage } from '../src/server/server.js';
import { DONE, PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../src/server/stage.js';
import { flush, lockstep, msg, opt } from './support/lockstep.js';

const STANDARD_ORDER = ['outer-blockwise', 'edhoc-combined', 'group-oscore', 'group-request', 'kudos-gate', 'oscore-layers', 'no-response', 'request-log', 'proxy-claim', 'option-checks', 'route', 'block2', 'observe', 'block1', 'handler'];

test('the stages run in the documented order: outer block-wise, the §2.4 OSCORE loop, proxy claim, option checks, route, … handler', () => {
  const server = new CoapServer(lockstep().endpoint);
  assert.deepEqual(server.pipeline.stages.map((s) => s.name), STANDARD_ORDER);
});

/** Answers GET /gate itself (with a mark the response side can see), passes everything else on. */
class GateStage implements ServerStage {
  readonly name = 'test-gate';
  readonly seen: Array<{ path: string | undefined; routed: boolean }> = [];
  outgoing = 0;

  receive(request: InboundRequest): StageVerdict {
    const path = request.path.join('/');
    this.seen.push({ path, routed: request.resource !== undefined });
    if (path !== 'gate') return PASS;
    request.answer(toMessage({ code: ResponseCode.Content, payload: 'answered by the test stage' }));
    return DONE;
  }

  respond(_request: InboundRequest, response: CoapMessage): CoapMessage {
    this.outgoing++;
    return response;
  }
}

function serverWithGate() {
  const h = lockstep();
  const gate = new GateStage();
  const server = new CoapServer(h.endpoint, {
    stages: (standard) => {
      const list = [...standard];
      list.splice(list.findIndex((s) => s.name === 'route') + 1, 0, gate);
      return list;
    },
  });
  let handlerCalls = 0;
  server.resource('/gate', { GET: () => (handlerCalls++, { code: ResponseCode.Content, payload: 'handler' }) });
  server.resource('/open', { GET: () => (handlerCalls++, { code: ResponseCode.Content, payload: 'handler' }) });
  let mid = 1;
  const send = (options: ReturnType<typeof opt>[]) => {
    h.transport.deliver(msg({ type: MessageType.CON, code: Method.GET, messageId: mid++, token: Uint8Array.of(mid), options }));
    return h.transport.take().map((d) => d.message);
  };
  return { server, gate, send, handlerCalls: () => handlerCalls };
}

test('a test-only stage inserted after route runs at its place', () => {
  const s = serverWithGate();
  assert.deepEqual(s.server.pipeline.stages.map((x) => x.name), [...STANDARD_ORDER.slice(0, STANDARD_ORDER.indexOf('route') + 1), 'test-gate', ...STANDARD_ORDER.slice(STANDARD_ORDER.indexOf('route') + 1)]);

  // Stages before it answer first: an unknown path (route, 4.04), a bad critical option (option checks, 4.02).
  assert.equal(s.send([opt(OptionNumber.UriPath, 'nowhere')])[0]?.code, ResponseCode.NotFound);
  assert.equal(s.send([opt(OptionNumber.UriPath, 'gate'), opt(65001, 'x')])[0]?.code, ResponseCode.BadOption);
  assert.deepEqual(s.gate.seen, []);

  // It sees the routed request, and what it answers never reaches the handler after it.
  const [gated] = s.send([opt(OptionNumber.UriPath, 'gate')]);
  assert.equal(Buffer.from(gated!.payload).toString(), 'answered by the test stage');
  assert.equal(s.handlerCalls(), 0);
  assert.deepEqual(s.gate.seen, [{ path: 'gate', routed: true }]);
  assert.equal(s.gate.outgoing, 0, 'its own answer does not pass its own response side');

  // Its answer goes out through the stages before it: No-Response suppresses a 2.xx (RFC 7967).
  assert.deepEqual(s.send([opt(OptionNumber.UriPath, 'gate'), opt(OptionNumber.NoResponse, encodeUint(2))]).map((m) => m.code), [0]);

  // Anything else passes on to the handler, whose response comes back through this stage.
  const [handled] = s.send([opt(OptionNumber.UriPath, 'open')]);
  assert.equal(Buffer.from(handled!.payload).toString(), 'handler');
  assert.equal(s.handlerCalls(), 1);
  assert.equal(s.gate.outgoing, 1);
  assert.equal(getOption(handled!, OptionNumber.Block2), undefined);
});

/** Names of the stages a request arriving now visits, each way (StagePlan). */
const planOf = (server: CoapServer) => {
  const { stages } = server.pipeline;
  const plan = server.pipeline.currentPlan();
  return { receiving: plan.receiving.map((i) => stages[i]!.name), responding: plan.responding.map((i) => stages[i]!.name) };
};

const PLAIN_RECEIVING = ['edhoc-combined', 'option-checks', 'route', 'block2', 'block1', 'handler'];
const PLAIN_RESPONDING = ['no-response', 'request-log', 'block2', 'observe', 'block1'];

test('a plain server calls no stage that cannot act without security, proxy or group; each becomes part of the path when configured', () => {
  const server = new CoapServer(lockstep().endpoint);
  assert.deepEqual(planOf(server), { receiving: PLAIN_RECEIVING, responding: PLAIN_RESPONDING });

  server.setForwardingHandler({ forward: () => {} });
  assert.deepEqual(planOf(server).receiving, ['edhoc-combined', 'proxy-claim', ...PLAIN_RECEIVING.slice(1)]);
  server.setForwardingHandler(undefined);
  assert.deepEqual(planOf(server).receiving, PLAIN_RECEIVING);

  server.security = new OscoreServerSecurity([serverContext()]);
  assert.deepEqual(planOf(server), {
    receiving: ['outer-blockwise', 'edhoc-combined', 'oscore-layers', ...PLAIN_RECEIVING.slice(1)],
    responding: ['outer-blockwise', 'oscore-layers', ...PLAIN_RESPONDING],
  });
});

test('a stage that says it cannot act is not called; one that says nothing is called every time', () => {
  const h = lockstep();
  const calls = { idleReceive: 0, idleRespond: 0, plainReceive: 0, plainRespond: 0 };
  const idle: ServerStage = { name: 'idle', receive: () => (calls.idleReceive++, PASS), respond: (_r, m) => (calls.idleRespond++, m), receives: () => false, responds: () => false };
  const plain: ServerStage = { name: 'plain', receive: () => (calls.plainReceive++, PASS), respond: (_r, m) => (calls.plainRespond++, m) };
  const server = new CoapServer(h.endpoint, { stages: (standard) => [idle, plain, ...standard] });
  server.resource('/x', { GET: () => ({ code: ResponseCode.Content }) });
  h.transport.deliver(msg({ code: Method.GET, messageId: 1, token: Uint8Array.of(1), options: [opt(OptionNumber.UriPath, 'x')] }));
  assert.equal(h.transport.take()[0]?.message.code, ResponseCode.Content);
  assert.deepEqual(calls, { idleReceive: 0, idleRespond: 0, plainReceive: 1, plainRespond: 1 });
});

const CLIENT_ID = new Uint8Array(0);
const SERVER_ID = Uint8Array.of(1);
const SECRET = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const serverContext = () => new OscoreSecurityContext({ masterSecret: SECRET, senderId: SERVER_ID, recipientIds: [CLIENT_ID] }, new VolatileSequence());
const clientContext = () => new OscoreSecurityContext({ masterSecret: SECRET, senderId: CLIENT_ID, recipientIds: [SERVER_ID] }, new VolatileSequence());

test('security set while serving protects later requests; a request that arrived protected is answered protected even if security is removed meanwhile', async () => {
  const h = lockstep();
  const server = new CoapServer(h.endpoint);
  let release: (() => void) | undefined;
  server.resource('/slow', { GET: () => new Promise((resolve) => (release = () => resolve({ code: ResponseCode.Content, payload: 'late' }))) });
  server.resource('/fast', { GET: () => ({ code: ResponseCode.Content, payload: 'fast' }) });
  const client = clientContext();
  const protectedGet = (path: string, sequenceNumber: number, messageId: number) => {
    const inner = { type: MessageType.CON, code: Method.GET, messageId, token: Uint8Array.of(messageId), options: [opt(OptionNumber.UriPath, path)], payload: new Uint8Array(0) };
    const { message, binding } = protectRequest(inner, client.sender, sequenceNumber);
    return { datagram: msg(message), binding };
  };
  const open = (response: CoapMessage, binding: Parameters<typeof unprotectResponse>[2]) => {
    const opened = unprotectResponse(response, client.recipients[0]!.params, binding);
    assert.ok(opened.ok, 'the response is OSCORE-protected for the client');
    return opened.message;
  };

  // Without security an OSCORE option is an unrecognized critical option (RFC 7252 §5.4.1).
  h.transport.deliver(protectedGet('fast', 0, 1).datagram);
  assert.equal(h.transport.take()[0]?.message.code, ResponseCode.BadOption);

  server.security = new OscoreServerSecurity([serverContext()]);
  const fast = protectedGet('fast', 1, 2);
  h.transport.deliver(fast.datagram);
  assert.equal(Buffer.from(open(h.transport.take()[0]!.message, fast.binding).payload).toString(), 'fast');

  const slow = protectedGet('slow', 2, 3);
  h.transport.deliver(slow.datagram);
  assert.equal(h.transport.take().length, 0, 'the handler has not answered yet');
  server.security = undefined;
  release!();
  await flush();
  const [late] = h.transport.take();
  assert.equal(getOption(late!.message, OptionNumber.Oscore) !== undefined, true, 'still protected (RFC 8613 §8.3)');
  assert.equal(Buffer.from(open(late!.message, slow.binding).payload).toString(), 'late');
});
