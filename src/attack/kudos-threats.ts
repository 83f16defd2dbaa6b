/**
 * TEST TOOL. Two attacks on KUDOS (draft-ietf-core-oscore-key-update), run in process on the sans-IO
 * KudosSession with every message encoded to and decoded from its bytes on the wire, as an on-path
 * attacker sees them:
 *
 * - a replayed divergent message: request #1 of a client-initiated forward-message update
 *   (§4.3.3.1) is captured and sent again after the update completed. Its CTX_TEMP derives from
 *   CTX_OLD, which the server retired at key confirmation (§4.3.5), so it does not decrypt (RFC 8613
 *   §8.2: 4.00) and the server neither starts a new execution nor changes its context;
 * - a KUDOS message from a stale context: after an update, a peer holding the retired CTX_OLD (a
 *   client rolled back to a backup, or an attacker who later obtained CTX_OLD) starts a fresh
 *   update from it — a new nonce, so no replay window can catch it. The server derives CTX_TEMP
 *   from its current context only (§4.3.1: updateCtx(X1, N1, CTX_OLD) with CTX_OLD the context in
 *   use), so it is refused just the same.
 *
 * - a request replayed after a server restart: a request under a KUDOS context, captured before the
 *   server restarted from its KUDOS record, is sent again after it. The record keeps no replay
 *   window, so the server answers the first request under each context with a B.1.2 Echo
 *   challenge (RFC 8613 Appendix B.1.2) instead of processing it.
 *
 * The baseline of the first two rows is the same message at a server that never retired CTX_OLD
 * (it still has it as its context): there it is accepted and the server moves to PENDING with a
 * context derived from material the attacker holds — what retirement prevents. The baseline of the
 * restart row is the same bytes at a server with the same context and no memory of them — what a
 * restart amounts to without B.1.2. Computed by a run like the rest.
 */
import { decodeMessage, encodeMessage } from '../coap/codec.js';
import { Method, ResponseCode } from '../coap/codes.js';
import { encodeString, getOption, MessageType, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import { decodeOscoreOption } from '../oscore/option.js';
import { echoChallenge } from '../server/oscore.js';
import type { ChallengeHandle } from '../kudos/session-types.js';
import { fingerprint } from '../kudos/messages.js';
import type { KudosRecord, KudosStorage } from '../kudos/persistence.js';
import { KudosSession, type KudosSessionOptions } from '../kudos/session.js';

export type KudosVerdict = 'detected' | 'undetected';

export interface KudosAttackOutcome {
  readonly verdict: KudosVerdict;
  readonly detail: string;
}

export interface KudosThreatRow {
  readonly threat: string;
  readonly attack: string;
  readonly protection: string;
  readonly outcome: KudosAttackOutcome;
  /** What the baseline server is. */
  readonly baselineServer: string;
  readonly baseline: KudosAttackOutcome;
}

/** A record kept in memory: these runs need no crash safety, only the session's own logic. */
class MemoryStorage implements KudosStorage {
  #record: KudosRecord | undefined;
  read(): KudosRecord | undefined {
    return this.#record === undefined ? undefined : structuredClone(this.#record);
  }
  write(record: KudosRecord): void {
    this.#record = structuredClone(record);
  }
}

type Identity = KudosSessionOptions['identity'];
const CLIENT: Identity = { senderId: new Uint8Array(0), recipientId: Uint8Array.of(1), aead: 10, hkdf: -10 };
const SERVER: Identity = { senderId: Uint8Array.of(1), recipientId: new Uint8Array(0), aead: 10, hkdf: -10 };
const CTX_OLD = { masterSecret: Uint8Array.from({ length: 16 }, (_, i) => 0x40 + i), masterSalt: Uint8Array.of(0x9e, 0x7c, 0xa9, 0x22) };
/** The server keeps CTX_OLD this long after key confirmation for late non KUDOS messages (§4.6); the attacks run inside that window. */
const RETAIN_OLD_MS = 60_000;

const open = (identity: Identity): KudosSession => KudosSession.open({ identity, storage: new MemoryStorage(), retainOldMs: RETAIN_OLD_MS }, CTX_OLD);

let messageId = 0x2b00;
function post(path: string, payload: string): CoapMessage {
  const id = messageId++;
  return {
    type: MessageType.CON,
    code: Method.POST,
    messageId: id,
    token: Uint8Array.of(id >> 8, id & 0xff),
    options: path.split('/').filter(Boolean).map((segment) => ({ number: OptionNumber.UriPath, value: encodeString(segment) })),
    payload: encodeString(payload),
  };
}
const changed = (to: CoapMessage): CoapMessage => ({ type: MessageType.ACK, code: ResponseCode.Changed, messageId: to.messageId, token: to.token, options: [], payload: new Uint8Array(0) });
const onTheWire = (message: CoapMessage): Uint8Array => new Uint8Array(encodeMessage(message));
const codeText = (code: number): string => `${code >> 5}.${String(code & 31).padStart(2, '0')}`;
// A digest prefix names the context in the report; the secret itself is never shown.
const contextOf = (session: KudosSession): string => fingerprint(session.currentSecrets.masterSecret).slice(0, 8);

/** One request and its response between two sessions; throws if either side refuses (it is the legitimate traffic). */
function exchange(client: KudosSession, server: KudosSession, path: string, startKudos: boolean): Uint8Array {
  const sent = client.protectRequest(post(path, path), { startKudos });
  const bytes = onTheWire(sent.message);
  const received = server.unprotectRequest(decodeMessage(bytes));
  if (!received.ok) throw new Error(`the server refused legitimate traffic to ${path}: ${received.reason}`);
  const answer = server.protectResponse(changed(received.message), received.request);
  const back = client.unprotectResponse(decodeMessage(onTheWire(answer.message)), sent.outgoing);
  if (!back.ok) throw new Error(`the client refused the response from ${path}: ${back.reason}`);
  return bytes;
}

/** A client-initiated forward-message update and its key confirmation; returns request #1's bytes. */
function update(client: KudosSession, server: KudosSession): Uint8Array {
  const request1 = exchange(client, server, '.well-known/kudos', true);
  exchange(client, server, 'echo', false);
  if (server.state !== 'IDLE' || contextOf(client) !== contextOf(server)) throw new Error('the update did not complete');
  return request1;
}

/** Delivers `bytes` to `server` and judges from its answer and whether its state or context moved. */
function deliver(server: KudosSession, bytes: Uint8Array, refusedMeans: string): KudosAttackOutcome {
  const before = { state: server.state, context: contextOf(server) };
  const result = server.unprotectRequest(decodeMessage(bytes));
  const after = { state: server.state, context: contextOf(server) };
  const moved = before.state !== after.state || before.context !== after.context;
  const where = `state ${before.state} → ${after.state}, context ${before.context} → ${after.context}`;
  if (result.ok) return { verdict: 'undetected', detail: `accepted as a ${result.kudos ? 'KUDOS' : 'non KUDOS'} request (via ${result.request.via}); ${where}` };
  if (moved) return { verdict: 'undetected', detail: `refused (${codeText(result.code)} ${result.reason}) but the server moved: ${where}` };
  // A challenge is answered with a protected 4.01 carrying Echo: the request itself is not processed.
  const answer = result.challenge ? `, answered with ${echoChallengeOf(server, result.challenge)}` : '';
  return { verdict: 'detected', detail: `server: refused with ${codeText(result.code)} (${result.reason})${answer} — ${refusedMeans}; ${where}` };
}

/** Protects the B.1.2 challenge as KudosServerSecurity does and says what it is, as the client reads it. */
function echoChallengeOf(server: KudosSession, challenge: ChallengeHandle): string {
  const echo = Uint8Array.from({ length: 16 }, (_, i) => i);
  const protectedChallenge = server.protectChallenge(echoChallenge(echo), challenge).message;
  const options = decodeOscoreOption(getOption(protectedChallenge, OptionNumber.Oscore)!);
  return `a protected response (outer ${codeText(protectedChallenge.code)}, its own Partial IV ${options.piv === undefined ? 'missing' : 'present'}) holding a 4.01 with Echo (RFC 8613 B.1.2)`;
}

export const KUDOS_REPLAY_THREAT = 'KUDOS: a replayed divergent message (request #1 of an update, replayed after the update)';
export const KUDOS_STALE_THREAT = 'KUDOS: a KUDOS message protected with a stale (retired) context';

export function runKudosReplay(): KudosThreatRow {
  const client = open(CLIENT);
  const server = open(SERVER);
  const captured = update(client, server);
  const outcome = deliver(server, captured, 'its CTX_TEMP derives from CTX_OLD, retired at key confirmation (§4.3.5)');
  // Baseline: the same bytes at a server that still has CTX_OLD as its context.
  const baseline = deliver(open(SERVER), captured, 'unexpected at a server on CTX_OLD');
  return {
    threat: KUDOS_REPLAY_THREAT,
    attack: 'an on-path attacker captures divergent request #1 of a client-initiated forward-message update and sends it again once the update completed (CTX_OLD still retained for late non KUDOS messages, §4.6)',
    protection: 'KUDOS + OSCORE: CTX_TEMP = updateCtx(X1, N1, current context) (§4.3.1), CTX_OLD retired as a KUDOS input at key confirmation (§4.3.5)',
    outcome,
    baselineServer: 'a server that kept CTX_OLD',
    baseline,
  };
}

export function runKudosStaleContext(): KudosThreatRow {
  const client = open(CLIENT);
  const server = open(SERVER);
  // The stale peer: a copy of the client from before the update (a restored backup, or an attacker who obtained CTX_OLD).
  const stale = open(CLIENT);
  update(client, server);
  const fresh = stale.protectRequest(post('.well-known/kudos', 'from CTX_OLD'), { startKudos: true });
  const bytes = onTheWire(fresh.message);
  const outcome = deliver(server, bytes, 'a new nonce, so no replay window applies: CTX_TEMP from the retired context does not verify under the current one');
  const baseline = deliver(open(SERVER), bytes, 'unexpected at a server on CTX_OLD');
  return {
    threat: KUDOS_STALE_THREAT,
    attack: 'after an update, a peer holding the retired CTX_OLD starts a fresh KUDOS execution from it (new N1), inside the server\'s §4.6 retention window for CTX_OLD',
    protection: 'KUDOS + OSCORE: a KUDOS message is only ever verified under CTX_TEMP from the current context (§4.3.1), never from a retained one',
    outcome,
    baselineServer: 'a server that kept CTX_OLD',
    baseline,
  };
}

export const KUDOS_RESTART_THREAT = 'KUDOS: a request replayed after the server restarted from its KUDOS record';

export function runKudosRestartReplay(): KudosThreatRow {
  const client = open(CLIENT);
  const storage = new MemoryStorage();
  const server = KudosSession.open({ identity: SERVER, storage, retainOldMs: RETAIN_OLD_MS }, CTX_OLD);
  update(client, server);
  const captured = exchange(client, server, 'valve/open', false);
  // The restart: the process's memory is gone; the session comes back from its record.
  const restarted = KudosSession.open({ identity: SERVER, storage, retainOldMs: RETAIN_OLD_MS });
  const outcome = deliver(restarted, captured, 'no replay window survives a restart, so the request is not processed until one echoing the challenge sets the window');
  // Baseline: the same context at a server with no memory of the request, which is what a restart is without B.1.2.
  const unaware = KudosSession.open({ identity: SERVER, storage: new MemoryStorage(), retainOldMs: RETAIN_OLD_MS }, server.currentSecrets);
  const baseline = deliver(unaware, captured, 'unexpected at a server with no memory of it');
  return {
    threat: KUDOS_RESTART_THREAT,
    attack: 'an on-path attacker records a request (POST /valve/open) under the context an update established, and sends it again once the server restarted from its KUDOS record',
    protection: 'KUDOS + OSCORE: RFC 8613 Appendix B.1.2 on every context resumed from the record — the first request under each gets a protected 4.01 with Echo, only a request echoing it sets the replay window',
    outcome,
    baselineServer: 'a server with the same context and no memory of the request',
    baseline,
  };
}

export function runKudosThreats(): KudosThreatRow[] {
  return [runKudosReplay(), runKudosStaleContext(), runKudosRestartReplay()];
}
