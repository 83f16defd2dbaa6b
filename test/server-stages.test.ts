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
import { CoapServer, toMessage } from '../src/server/server.js';
import { DONE, PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../src/server/stage.js';
import { lockstep, msg, opt } from './support/lockstep.js';

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
