/**
 * The server's group stages in lockstep (no network): a request that came to the group waits a
 * random Leisure and its errors are suppressed (groupcomm-bis §3.1.2, §6.5), a unicast one does
 * not; Group OSCORE requests are verified and answered protected, refusals to the group are silent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Method, ResponseCode } from '../src/coap/codes.js';
import { decodeMessage } from '../src/coap/codec.js';
import { MessageType, encodeUint } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { GroupContextStore } from '../src/group-oscore/context.js';
import { GroupManager, contextFromMemberFile } from '../src/group-oscore/manager.js';
import { protectGroupRequest, unprotectGroupResponse } from '../src/group-oscore/protect.js';
import { CoapServer } from '../src/server/server.js';
import { encodeMessage } from '../src/coap/codec.js';
import { lockstep, msg, opt } from './support/lockstep.js';

const LEISURE = 1000;

function groupServer(contexts?: GroupContextStore, maxDelayedAnswers?: number) {
  const h = lockstep();
  const membership = { receivingGroupDatagram: false };
  const server = new CoapServer(h.endpoint, { group: { membership, leisureMs: LEISURE, ...(contexts ? { contexts } : {}), ...(maxDelayedAnswers !== undefined ? { maxDelayedAnswers } : {}) } });
  server.resource('/light', { GET: () => ({ code: ResponseCode.Content, payload: 'on' }) });
  const toGroup = (data: Uint8Array): void => {
    membership.receivingGroupDatagram = true;
    try {
      h.transport.deliver(data);
    } finally {
      membership.receivingGroupDatagram = false;
    }
  };
  return { h, server, toGroup };
}

let mid = 100;
const get = (path: string, extra: ReturnType<typeof opt>[] = []) => msg({ type: MessageType.NON, code: Method.GET, messageId: mid++, token: Uint8Array.of(mid & 0xff), options: [opt(OptionNumber.UriPath, path), ...extra] });

test('a group request is answered after a random Leisure; a unicast one at once', () => {
  const { h, toGroup } = groupServer();
  toGroup(get('light'));
  assert.deepEqual(h.transport.take(), []);
  h.clock.advance(LEISURE);
  assert.deepEqual(h.transport.take().map((d) => d.message.code), [ResponseCode.Content]);
  h.transport.deliver(get('light'));
  assert.deepEqual(h.transport.take().map((d) => d.message.code), [ResponseCode.Content]);
});

test('answers waiting for their Leisure are bounded: past the bound, group requests go unanswered', () => {
  const { h, toGroup } = groupServer(undefined, 3);
  for (let i = 0; i < 5; i++) toGroup(get('light'));
  h.clock.advance(LEISURE);
  assert.equal(h.transport.take().length, 3);
  toGroup(get('light'));
  h.clock.advance(LEISURE);
  assert.equal(h.transport.take().length, 1, 'the bound frees up as answers go out');
});

test('errors to a group request are suppressed (§3.1.2), also when an unauthenticated client asks for them with No-Response (§6.5)', () => {
  const { h, toGroup } = groupServer();
  toGroup(get('nowhere'));
  toGroup(get('nowhere', [{ number: OptionNumber.NoResponse, value: encodeUint(0) }]));
  h.clock.advance(LEISURE * 2);
  assert.deepEqual(h.transport.take(), []);
  h.transport.deliver(get('nowhere'));
  assert.deepEqual(h.transport.take().map((d) => d.message.code), [ResponseCode.NotFound]);
});

test('Group OSCORE: a group-mode request is verified and answered protected after the Leisure; its replay to the group is dropped silently, to this server alone refused', () => {
  const gm = GroupManager.create({ name: 'lights' });
  gm.addMember('client');
  gm.addMember('s1');
  const client = contextFromMemberFile(gm.memberFile('client'));
  const store = new GroupContextStore();
  store.install('lights', contextFromMemberFile(gm.memberFile('s1')));
  const { h, toGroup } = groupServer(store);
  const request = decodeMessage(get('light'));
  const { message, binding } = protectGroupRequest(request, client, { mode: 'group' });
  const bytes = encodeMessage(message);
  toGroup(bytes);
  h.clock.advance(LEISURE);
  const [answer] = h.transport.take();
  assert.ok(answer);
  assert.ok(answer.message.options.some((o) => o.number === OptionNumber.Oscore));
  const opened = unprotectGroupResponse(answer.message, client, binding);
  assert.ok(opened.ok);
  assert.equal(Buffer.from(opened.message.payload).toString(), 'on');
  assert.equal(opened.message.code, ResponseCode.Content);

  toGroup(encodeMessage({ ...message, messageId: mid++ }));
  h.clock.advance(LEISURE);
  assert.deepEqual(h.transport.take(), []);
  h.transport.deliver(encodeMessage({ ...message, messageId: mid++ }));
  const [refusal] = h.transport.take();
  assert.equal(refusal?.message.code, ResponseCode.Unauthorized);
  assert.equal(Buffer.from(refusal!.message.payload).toString(), 'Replay detected');
});

test('a removed member cannot inject after the rekey: its requests under the old Gid find no context', () => {
  const gm = GroupManager.create({ name: 'lights' });
  for (const name of ['client', 's1', 'gone']) gm.addMember(name);
  const gone = contextFromMemberFile(gm.memberFile('gone'));
  gm.removeMember('gone');
  const store = new GroupContextStore();
  store.install('lights', contextFromMemberFile(gm.memberFile('s1')));
  const { h, toGroup } = groupServer(store);
  const { message } = protectGroupRequest(decodeMessage(get('light')), gone, { mode: 'group' });
  toGroup(encodeMessage(message));
  h.clock.advance(LEISURE);
  assert.deepEqual(h.transport.take(), [], 'to the group: dropped silently');
  h.transport.deliver(encodeMessage({ ...message, messageId: mid++ }));
  const [refusal] = h.transport.take();
  assert.equal(refusal?.message.code, ResponseCode.Unauthorized);
  assert.equal(Buffer.from(refusal!.message.payload).toString(), 'Security context not found');
});
