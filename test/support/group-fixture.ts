/**
 * Misbehaving group members for test/group-oscore-multicast.test.ts, run inside a test's network
 * namespace (`node dist/test/support/group-fixture.js ROLE ...`):
 *
 * - `replay MEMBER_FILE GROUP PORT SERVER...`: a client that sends one group-mode request to the
 *   group, then replays its exact bytes — to the group, and to each server alone (a forwarder
 *   replaying it). Prints one JSON line: the codes each replay drew from each server.
 * - `forge MEMBER_FILE VICTIM_ID VICTIM_CREDENTIAL BIND PORT GROUP`: a member that answers each group
 *   request with a response in the victim's name (the victim's Sender ID and credential, its own key).
 * - `con GROUP PORT`: sends a CON request to the group; prints how many datagrams came back.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Method } from '../../src/coap/codes.js';
import { decodeMessage, encodeMessage } from '../../src/coap/codec.js';
import { MessageType, createMessage, encodeString, type CoapMessage } from '../../src/coap/message.js';
import { OptionNumber } from '../../src/coap/options.js';
import { fromHex } from '../../src/cose/cbor.js';
import { contextFromMemberFile, type GroupMemberFile } from '../../src/group-oscore/manager.js';
import { protectGroupRequest, unprotectGroupRequest, unprotectGroupResponse } from '../../src/group-oscore/protect.js';
import { forgeGroupResponse } from '../../src/attack/group-forge.js';
import { defaultStateDirectory } from '../../src/credentials/state-directory.js';
import { openGroupMember, readMemberFile } from '../../src/group/member.js';

const [role, ...args] = process.argv.slice(2);

const member = (path: string) => contextFromMemberFile(JSON.parse(readFileSync(path, 'utf8')) as GroupMemberFile);
/** With the member's durable counter: requests it sent before (through the CLI) are never repeated by accident. */
const sendingMember = (path: string) => openGroupMember(readMemberFile(path), defaultStateDirectory());
const socketFor = (address: string): dgram.Socket => dgram.createSocket(isIP(address) === 6 ? 'udp6' : 'udp4');

/** Datagrams arriving within `ms`, with their sources. */
function collect(socket: dgram.Socket, ms: number): Promise<Array<{ from: string; message: CoapMessage }>> {
  const got: Array<{ from: string; message: CoapMessage }> = [];
  const listener = (data: Buffer, rinfo: dgram.RemoteInfo): void => {
    try {
      got.push({ from: rinfo.address, message: decodeMessage(data) });
    } catch {
      // not CoAP: ignored
    }
  };
  socket.on('message', listener);
  return new Promise((resolve) =>
    setTimeout(() => {
      socket.off('message', listener);
      resolve(got);
    }, ms),
  );
}

async function replay(file: string, group: string, port: number, servers: string[]): Promise<void> {
  const opened = sendingMember(file);
  const client = opened.context;
  const socket = socketFor(group);
  await new Promise<void>((resolve) => socket.bind(0, resolve));
  const request = createMessage({ type: MessageType.NON, code: Method.GET, messageId: 0x2001, token: Uint8Array.of(9, 9, 9, 9), options: [{ number: OptionNumber.UriPath, value: encodeString('hello') }] });
  const { message, binding } = protectGroupRequest(request, client, { mode: 'group' });
  const bytes = encodeMessage(message);
  const summarize = (got: Array<{ from: string; message: CoapMessage }>): Record<string, string[]> => {
    const out: Record<string, string[]> = {};
    for (const { from, message: m } of got) {
      const opened = unprotectGroupResponse(m, client, binding);
      (out[from] ??= []).push(opened.ok ? `protected ${opened.message.code >> 5}.${String(opened.message.code & 31).padStart(2, '0')}` : `${m.code >> 5}.${String(m.code & 31).padStart(2, '0')} ${Buffer.from(m.payload).toString()}`);
    }
    return out;
  };
  socket.send(bytes, port, group);
  const original = summarize(await collect(socket, 1500));
  // The same bytes again, with a new Message ID so that no CoAP deduplication hides the replay.
  const again = encodeMessage({ ...message, messageId: 0x2002 });
  socket.send(again, port, group);
  const toGroup = summarize(await collect(socket, 1500));
  let messageId = 0x2003;
  for (const server of servers) socket.send(encodeMessage({ ...message, messageId: messageId++ }), port, server);
  const toEach = summarize(await collect(socket, 1500));
  process.stdout.write(`${JSON.stringify({ original, toGroup, toEach })}\n`);
  socket.close();
  opened.close();
}

async function forge(file: string, victimId: string, victimCredential: string, bind: string, port: number, group: string): Promise<void> {
  const forger = member(file);
  const unicast = socketFor(bind);
  await new Promise<void>((resolve) => unicast.bind(port, bind, resolve));
  const listener = socketFor(group);
  await new Promise<void>((resolve) => listener.bind(port, group, resolve));
  listener.addMembership(group, isIP(group) === 6 ? '::%eth0' : bind);
  listener.on('message', (data, rinfo) => {
    let request: CoapMessage;
    try {
      request = decodeMessage(data);
    } catch {
      return;
    }
    const opened = unprotectGroupRequest(request, (gid) => (Buffer.compare(gid, forger.gid) === 0 ? forger : undefined));
    if (!opened.ok) return;
    const forged = forgeGroupResponse(forger, fromHex(victimId), fromHex(victimCredential), opened.binding, 'forged', request.token);
    unicast.send(encodeMessage({ ...forged, messageId: request.messageId ^ 0x5555 }), rinfo.port, rinfo.address);
  });
  process.stderr.write('coapsec serving on forger\n');
  await new Promise<void>((resolve) => process.once('SIGTERM', resolve));
  listener.close();
  unicast.close();
}

async function con(group: string, port: number): Promise<void> {
  const socket = socketFor(group);
  await new Promise<void>((resolve) => socket.bind(0, resolve));
  socket.send(encodeMessage(createMessage({ type: MessageType.CON, code: Method.GET, messageId: 0x3001, token: Uint8Array.of(1), options: [{ number: OptionNumber.UriPath, value: encodeString('hello') }] })), port, group);
  const got = await collect(socket, 1500);
  process.stdout.write(`${JSON.stringify({ datagrams: got.length })}\n`);
  socket.close();
}

if (role === 'replay') await replay(args[0]!, args[1]!, Number(args[2]), args.slice(3));
else if (role === 'forge') await forge(args[0]!, args[1]!, args[2]!, args[3]!, Number(args[4]), args[5]!);
else if (role === 'con') await con(args[0]!, Number(args[1]));
else throw new Error(`unknown role ${role}`);
