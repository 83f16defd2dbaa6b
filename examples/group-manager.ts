import { CoapClient, CoapServer, Method, MessageType, createMessage, OscoreClientSecurity, OscoreSecurityContext, OscoreServerSecurity, VolatileSequence } from 'coapsec';
import { AuthorizationServer, MemoryAsState, SCOPE_FORMATS, bindAuthorizationServer } from 'coapsec/ace';
import { GroupManager, contextFromMemberFile, protectGroupRequest, unprotectGroupRequest, type GroupMemberFile, type GroupSecurityContext } from 'coapsec/group-oscore';
import { GroupMembership, OnlineGroupManager, attachGroupManager } from 'coapsec/group-manager';

const gmKey = { kid: Uint8Array.of(9), key: new Uint8Array(16).fill(0xa5) };
const names = ['alice', 'bob', 'carol'];
// Each client's OSCORE context with the AS, set up beforehand (RFC 9203 §5).
const toAs = names.map((name, i) => {
  const input = { masterSecret: new Uint8Array(16).fill(i + 1), senderId: Uint8Array.of(i + 1), recipientIds: [Uint8Array.of(0xaa)] };
  return {
    client: new OscoreSecurityContext({ ...input, name: 'as' }, new VolatileSequence()),
    server: new OscoreSecurityContext({ masterSecret: input.masterSecret, senderId: Uint8Array.of(0xaa), recipientIds: [input.senderId], name }, new VolatileSequence()),
  };
});

// The AS: audience "gm" takes AIF scopes (group name and roles); everyone may join "lights".
const asServer = await CoapServer.listen({ host: '127.0.0.1', port: 0, security: new OscoreServerSecurity(toAs.map((c) => c.server)) });
const roles = ['lights:requester', 'lights:responder'];
const as = new AuthorizationServer({
  audiences: [{ name: 'gm', key: gmKey, scopes: roles, profile: 'coap_oscore', scopeFormat: SCOPE_FORMATS['aif-oscore-group'] }],
  clients: names.map((name) => ({ name, grants: new Map([['gm', roles]]) })),
  state: new MemoryAsState(),
});
bindAuthorizationServer(asServer, as);
const asUri = `coap://127.0.0.1:${asServer.address().port}/token`;

// The Group Manager takes over a group made by the offline tool, and serves /authz-info and /ace-group/lights.
const manager = OnlineGroupManager.fromOfflineStates([GroupManager.create({ name: 'lights' }).toJSON()]);
const gmServer = await CoapServer.listen({ host: '127.0.0.1', port: 0 });
attachGroupManager(gmServer, manager, { audiences: ['gm'], tokenKeys: [gmKey], asUri });
const gmOrigin = `coap://127.0.0.1:${gmServer.address().port}`;

// Each member gets a token, joins (its key pair made for the group's algorithm) and fetches the others' credentials.
const client = new CoapClient();
const members = [];
for (const [i, name] of names.entries()) {
  members.push(await GroupMembership.join({ client, gmOrigin, asUri, asSecurity: new OscoreClientSecurity(toAs[i]!.client), group: 'lights', name }));
}
const files: GroupMemberFile[] = [];
for (const member of members) files.push(await member.refresh());

function reads(sender: GroupSecurityContext, reader: GroupSecurityContext): boolean {
  const request = createMessage({ type: MessageType.NON, code: Method.GET, messageId: 1, token: Uint8Array.of(1) });
  const { message } = protectGroupRequest(request, sender, { mode: 'group' });
  return unprotectGroupRequest(message, (gid) => (Buffer.compare(gid, reader.gid) === 0 ? reader : undefined)).ok;
}
const [alice, bob, carol] = files.map((f) => contextFromMemberFile(f));
console.log(`bob reads alice: ${reads(alice!, bob!)}, carol reads alice: ${reads(alice!, carol!)}`);

// The Group Manager removes carol: the group is rekeyed, alice and bob learn it by Observe.
const rekeyed = members.slice(0, 2).map((member) => new Promise<GroupMemberFile>((resolve) => void member.watch(resolve)));
await new Promise((resolve) => setTimeout(resolve, 100));
manager.removeNode('lights', members[2]!.node);
const [alice2, bob2] = (await Promise.all(rekeyed)).map((f) => contextFromMemberFile(f));
console.log(`key generation ${alice2!.keyGeneration}: bob reads alice: ${reads(alice2!, bob2!)}, carol reads alice: ${reads(alice2!, carol!)}`);

await client.close();
await gmServer.close();
await asServer.close();
