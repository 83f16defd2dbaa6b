/**
 * TEST TOOL. The group scenario of the threat suite (issue 20): one client sends POST /toggle to a
 * group of three servers s1–s3, each toggles a light and answers. Four attacks, each run twice —
 * on plain CoAP (the baseline) and under Group OSCORE (draft-ietf-core-oscore-groupcomm, group
 * mode) — and judged by what the applications accepted:
 *  - a member (s2) answering in another member's (s3's) name;
 *  - a forwarder replaying the recorded group request to every server;
 *  - a forwarder dropping s3's response;
 *  - a removed member (s3, after the Group Manager's rekey, §12.2) injecting a request.
 *
 * Runs in process on the sans-IO Group OSCORE core, the servers' CoAP handling on encoded
 * datagrams (as the server stages do: group-mode requests only, refusals to the group silent,
 * groupcomm-bis §3.1.2); no sockets.
 */
import { decodeMessage, encodeMessage } from '../coap/codec.js';
import { Method, ResponseCode } from '../coap/codes.js';
import { type CoapMessage, MessageType, createMessage, encodeString } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { fromHex, toHex } from '../cose/cbor.js';
import { GroupContextStore, type GroupSecurityContext } from '../group-oscore/context.js';
import { GroupManager, applyRekey, contextFromMemberFile } from '../group-oscore/manager.js';
import { type GroupRequestBinding, protectGroupRequest, protectGroupResponse, unprotectGroupRequest, unprotectGroupResponse } from '../group-oscore/protect.js';
import { GroupResponseTracker } from '../group-oscore/responses.js';
import { forgeGroupResponse } from './group-forge.js';

export type GroupProtection = 'plain' | 'group-oscore';
export type GroupVerdict = 'undetected' | 'detected';

export interface GroupThreatOutcome {
  readonly verdict: GroupVerdict;
  readonly detail: string;
}

export interface GroupThreatRow {
  readonly id: string;
  readonly threat: string;
  readonly attack: string;
  readonly outcomes: Readonly<Record<GroupProtection, GroupThreatOutcome>>;
}

const GROUP = 'lights';
const SERVERS = ['s1', 's2', 's3'] as const;
type ServerName = (typeof SERVERS)[number];

/** A datagram as the client's socket reports it: the source it claims, and the bytes. */
interface Datagram {
  readonly from: string;
  readonly bytes: Uint8Array;
}

/** What the client accepted as the answers to its request, by the server it attributes each to. */
type Accepted = Map<string, string>;

interface Server {
  readonly name: ServerName;
  toggles: number;
  /** Under Group OSCORE: the member's contexts by Gid. */
  readonly contexts?: GroupContextStore;
  /** Why the last refused request was refused (the server says nothing to the group, §3.1.2). */
  readonly refusals: string[];
}

let nextMessageId = 1;
const toggleRequest = (token: number): CoapMessage =>
  createMessage({ type: MessageType.NON, code: Method.POST, messageId: nextMessageId++, token: Uint8Array.of(token), options: [{ number: OptionNumber.UriPath, value: encodeString('toggle') }] });

const isToggle = (m: CoapMessage): boolean =>
  m.code === Method.POST && m.options.filter((o) => o.number === OptionNumber.UriPath).map((o) => Buffer.from(o.value).toString()).join('/') === 'toggle';

const text = (m: CoapMessage): string => Buffer.from(m.payload).toString();

function toggle(server: Server, request: CoapMessage): CoapMessage {
  if (!isToggle(request)) return createMessage({ type: MessageType.NON, code: ResponseCode.NotFound, messageId: nextMessageId++, token: request.token });
  server.toggles += 1;
  return createMessage({ type: MessageType.NON, code: ResponseCode.Changed, messageId: nextMessageId++, token: request.token, payload: encodeString(`${server.name} toggled`) });
}

/** A server receiving one group datagram: its answer, or undefined (refused silently or not for it). */
function serve(server: Server, bytes: Uint8Array): Datagram | undefined {
  const request = decodeMessage(bytes);
  if (server.contexts === undefined) return { from: server.name, bytes: encodeMessage(toggle(server, request)) };
  const opened = unprotectGroupRequest(request, (gid) => server.contexts!.findByGid(gid));
  if (!opened.ok || opened.freshness !== 'fresh') {
    server.refusals.push(opened.ok ? 'replay window not yet verified' : opened.reason);
    return undefined;
  }
  return { from: server.name, bytes: encodeMessage(protectGroupResponse(toggle(server, opened.message), opened.context, opened.binding)) };
}

/** The group: a Group Manager with client, s1–s3, and each party's view. */
class GroupSetup {
  readonly gm = GroupManager.create({ name: GROUP });
  readonly servers: Server[];
  client?: GroupSecurityContext;
  /** Sender ID (hex) → member name, from the member file: how the client names an authenticated answer. */
  readonly memberByKid = new Map<string, string>();
  readonly serverContexts = new Map<ServerName, GroupSecurityContext>();

  constructor(readonly protection: GroupProtection) {
    for (const name of ['client', ...SERVERS]) this.memberByKid.set(this.gm.addMember(name).senderId, name);
    if (protection === 'plain') {
      this.servers = SERVERS.map((name) => ({ name, toggles: 0, refusals: [] }));
      return;
    }
    this.client = contextFromMemberFile(this.gm.memberFile('client'));
    this.servers = SERVERS.map((name) => {
      const context = contextFromMemberFile(this.gm.memberFile(name));
      this.serverContexts.set(name, context);
      const contexts = new GroupContextStore();
      contexts.install(GROUP, context);
      return { name, toggles: 0, contexts, refusals: [] };
    });
  }

  /** The request as it goes on the wire to the group, and what the client needs to match answers. */
  request(token: number): { bytes: Uint8Array; binding?: GroupRequestBinding; token: Uint8Array } {
    const plain = toggleRequest(token);
    if (this.client === undefined) return { bytes: encodeMessage(plain), token: plain.token };
    const { message, binding } = protectGroupRequest(plain, this.client, { mode: 'group' });
    return { bytes: encodeMessage(message), binding, token: plain.token };
  }

  /** The client's side: every datagram in order; what it accepted and what it refused (and why). */
  receive(sent: { binding?: GroupRequestBinding; token: Uint8Array }, datagrams: readonly Datagram[]): { accepted: Accepted; refused: string[] } {
    const accepted: Accepted = new Map();
    const refused: string[] = [];
    const tracker = new GroupResponseTracker();
    for (const { from, bytes } of datagrams) {
      const message = decodeMessage(bytes);
      if (toHex(message.token) !== toHex(sent.token)) continue;
      if (this.client === undefined || sent.binding === undefined) {
        // Plain CoAP: a response is matched by token; who answered is the source it came from.
        if (!accepted.has(from)) accepted.set(from, text(message));
        continue;
      }
      const opened = unprotectGroupResponse(message, this.client, sent.binding);
      if (!opened.ok) {
        refused.push(`a response from ${from} (${opened.reason})`);
        continue;
      }
      if (!tracker.accept(opened.kid, opened.sequenceNumber)) {
        refused.push(`a second response from ${from}`);
        continue;
      }
      accepted.set(this.memberByKid.get(toHex(opened.kid)) ?? `kid ${toHex(opened.kid)}`, text(opened.message));
    }
    return { accepted, refused };
  }
}

const describeAccepted = (accepted: Accepted): string => [...accepted].map(([who, said]) => `${who}: "${said}"`).join(', ') || 'nothing';
const toggles = (setup: GroupSetup): string => setup.servers.map((s) => `${s.name} ×${s.toggles}`).join(', ');
const refusalsOf = (servers: readonly Server[]): string => servers.map((s) => `${s.name}: ${s.refusals.join('; ') || 'nothing'}`).join(', ');

/** s2 answers in s3's name before s3 does (plain: with s3's source; Group OSCORE: with s3's kid and Sender Key). */
function impersonation(protection: GroupProtection): GroupThreatOutcome {
  const setup = new GroupSetup(protection);
  const sent = setup.request(0x11);
  const genuine = setup.servers.map((s) => serve(s, sent.bytes)!);
  const forgedText = 'off (forged by s2)';
  const request = decodeMessage(sent.bytes);
  const forged =
    sent.binding === undefined
      ? createMessage({ type: MessageType.NON, code: ResponseCode.Changed, messageId: nextMessageId++, token: request.token, payload: encodeString(forgedText) })
      : forgeGroupResponse(setup.serverContexts.get('s2')!, fromHex(setup.gm.memberFile('s3').senderId), fromHex(setup.gm.memberFile('s3').credential), sent.binding, forgedText, request.token);
  const { accepted, refused } = setup.receive(sent, [genuine[0]!, genuine[1]!, { from: 's3', bytes: encodeMessage(forged) }, genuine[2]!]);
  const believed = accepted.get('s3');
  if (believed === forgedText) return { verdict: 'undetected', detail: `the client took s2's forgery as s3's answer: ${describeAccepted(accepted)}` };
  return { verdict: 'detected', detail: `the client refused ${refused.join(', ')}; the countersignature is s2's, not s3's; accepted ${describeAccepted(accepted)}` };
}

/** A forwarder keeps the group request and later sends it to the group again. */
function replay(protection: GroupProtection): GroupThreatOutcome {
  const setup = new GroupSetup(protection);
  const sent = setup.request(0x22);
  for (const server of setup.servers) serve(server, sent.bytes);
  const answers = setup.servers.map((s) => serve(s, sent.bytes)).filter((d) => d !== undefined);
  if (setup.servers.every((s) => s.toggles === 2)) return { verdict: 'undetected', detail: `every server executed the request again (${toggles(setup)}) and answered the replay (${answers.length} responses)` };
  return { verdict: 'detected', detail: `each server refused the replay, silently to the group (${refusalsOf(setup.servers)}); ${toggles(setup)}` };
}

/** A forwarder drops s3's response; s1's and s2's reach the client. */
function dropOneResponse(protection: GroupProtection): GroupThreatOutcome {
  const setup = new GroupSetup(protection);
  const sent = setup.request(0x33);
  const answers = setup.servers.map((s) => serve(s, sent.bytes)!);
  const { accepted, refused } = setup.receive(sent, answers.filter((d) => d.from !== 's3'));
  const known = protection === 'group-oscore' ? 'the client knows exactly who answered (each response authenticated as a member)' : 'the client knows only the sources responses came from';
  return {
    verdict: 'undetected',
    detail: `accepted ${describeAccepted(accepted)}${refused.length ? `, refused ${refused.join(', ')}` : ''}; ${known}, but a missing answer looks the same as a server that did not answer — a group request has no end (groupcomm-bis §3.1.2 lets servers stay silent), so nothing tells it s3's answer was dropped (s3 toggled: ×${setup.servers[2]!.toggles})`,
  };
}

/** The Group Manager removes s3 and rekeys (§12.2); s3, still holding its old keys, sends a request to the group. */
function removedMemberInjects(protection: GroupProtection): GroupThreatOutcome {
  const setup = new GroupSetup(protection);
  const rekey = setup.gm.removeMember('s3');
  const [s1, s2] = setup.servers as [Server, Server, Server];
  let injected: Uint8Array;
  if (protection === 'plain') {
    // Without keys a removal changes nothing on the wire: s3 still knows how to talk to the group.
    injected = encodeMessage(toggleRequest(0x44));
  } else {
    for (const server of [s1, s2]) server.contexts!.install(GROUP, applyRekey(setup.serverContexts.get(server.name)!, rekey));
    injected = encodeMessage(protectGroupRequest(toggleRequest(0x44), setup.serverContexts.get('s3')!, { mode: 'group' }).message);
  }
  for (const server of [s1, s2]) serve(server, injected);
  if (s1.toggles + s2.toggles > 0) return { verdict: 'undetected', detail: `the remaining servers executed the removed member's request (s1 ×${s1.toggles}, s2 ×${s2.toggles})` };
  return { verdict: 'detected', detail: `refused by the remaining servers (${refusalsOf([s1, s2])}): its Gid was retired by the rekey (Key Generation ${rekey.keyGeneration}); s1 ×${s1.toggles}, s2 ×${s2.toggles}` };
}

const ROWS: readonly Omit<GroupThreatRow, 'outcomes'>[] = [
  { id: 'group-impersonation', threat: 'a server impersonating another', attack: 'member s2 sends a response to the group request in s3\'s name (s3\'s source / s3\'s kid and Sender Key, signed with s2\'s key), before s3\'s own' },
  { id: 'group-replay', threat: 'a forwarder replaying a group request', attack: 'the recorded POST /toggle is sent to the group again' },
  { id: 'group-drop', threat: 'dropping one server\'s response', attack: 's3\'s response is dropped on the way to the client' },
  { id: 'group-removed-member', threat: 'a removed member injecting', attack: 'after s3\'s removal and the rekey, s3 sends POST /toggle to the group with what it still holds' },
];

const RUNS: Record<string, (p: GroupProtection) => GroupThreatOutcome> = {
  'group-impersonation': impersonation,
  'group-replay': replay,
  'group-drop': dropOneResponse,
  'group-removed-member': removedMemberInjects,
};

export function runGroupThreats(): GroupThreatRow[] {
  return ROWS.map((row) => ({ ...row, outcomes: { plain: RUNS[row.id]!('plain'), 'group-oscore': RUNS[row.id]!('group-oscore') } }));
}

export const GROUP_THREATS_TEST = 'group threat rows: impersonation, replay and a removed member are refused under Group OSCORE and succeed on plain CoAP; a dropped response goes unnoticed under both';

/** The report section (appended to docs/threat-model.md by test/threat-report.ts). */
export function renderGroupThreats(rows: readonly GroupThreatRow[]): string[] {
  const cell = (o: GroupThreatOutcome): string => `${o.verdict}: ${o.detail.replace(/\|/g, '/')}`;
  return [
    '',
    '## Group communication (Group OSCORE)',
    '',
    `One client sends POST /toggle to a group of three servers s1–s3 made by the offline Group Manager (EdDSA, group mode); each toggles and answers. The adversary is a group member, a forwarder on the path, or a member the Group Manager removed (\`src/attack/group-threats.ts\`, run in process on the Group OSCORE core with the servers handling encoded datagrams; test: \`${GROUP_THREATS_TEST}\`). Every cell is computed by a run; the verdicts are the ones above.`,
    '',
    '| Threat | Attack | plain CoAP (baseline) | Group OSCORE (group mode) |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.threat} | ${r.attack} | ${cell(r.outcomes.plain)} | ${cell(r.outcomes['group-oscore'])} |`),
  ];
}
