import { Method, MessageType, ResponseCode, createMessage, encodeString } from 'coapsec';
import {
  GroupManager,
  GroupResponseTracker,
  contextFromMemberFile,
  protectGroupRequest,
  protectGroupResponse,
  unprotectGroupRequest,
  unprotectGroupResponse,
  type GroupSecurityContext,
} from 'coapsec/group-oscore';

// The offline Group Manager makes the group and one member file per member (EdDSA, AES-CCM).
const gm = GroupManager.create({ name: 'lights' });
for (const name of ['client', 's1', 's2', 's3']) gm.addMember(name);
const client = contextFromMemberFile(gm.memberFile('client'));
const servers = ['s1', 's2', 's3'].map((name) => ({ name, context: contextFromMemberFile(gm.memberFile(name)) }));
const byGid = (context: GroupSecurityContext) => (gid: Uint8Array) => (Buffer.compare(gid, context.gid) === 0 ? context : undefined);

// One group-mode request (what a multicast GET would carry), answered by every server.
const request = createMessage({ type: MessageType.NON, code: Method.GET, messageId: 1, token: Uint8Array.of(7), options: [{ number: 11, value: encodeString('light') }] });
const { message, binding } = protectGroupRequest(request, client, { mode: 'group' });
const tracker = new GroupResponseTracker(); // one per request: each server's responses in order, once
for (const { name, context } of servers) {
  const received = unprotectGroupRequest(message, byGid(context));
  if (!received.ok || received.freshness !== 'fresh') throw new Error(`${name} refused the request`);
  const answer = createMessage({ type: MessageType.NON, code: ResponseCode.Content, messageId: 2, token: request.token, payload: encodeString(`${name}: on`) });
  const response = unprotectGroupResponse(protectGroupResponse(answer, context, received.binding), client, binding);
  if (!response.ok || !tracker.accept(response.kid, response.sequenceNumber)) throw new Error('response refused');
  console.log(Buffer.from(response.message.payload).toString());
}
