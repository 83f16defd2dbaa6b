/** Two in-process KUDOS peers (a CoAP client and server sharing one OSCORE context) for the kudos-* tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { getOption, MessageType, sortOptions, type CoapMessage } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { type ChallengeHandle, type ContextMaterial, type KudosEvent, KudosFileStorage, KudosSession, type KudosSessionOptions, type OutgoingRequest, type PeerCapability, type SecretPair, type UnprotectedRequest } from '../src/kudos/index.js';

export const MASTER_SECRET = Uint8Array.from(Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex'));
export const MASTER_SALT = Uint8Array.from(Buffer.from('9e7ca92223786340', 'hex'));
export const BOOTSTRAP: SecretPair = { masterSecret: Uint8Array.from(Buffer.from('b0'.repeat(16), 'hex')), masterSalt: Uint8Array.from(Buffer.from('5a17', 'hex')) };

type Identity = Omit<ContextMaterial, 'masterSecret' | 'masterSalt'>;
export const CLIENT_IDENTITY: Identity = { senderId: new Uint8Array(0), recipientId: Uint8Array.of(1), aead: 10, hkdf: -10 };
export const SERVER_IDENTITY: Identity = { senderId: Uint8Array.of(1), recipientId: new Uint8Array(0), aead: 10, hkdf: -10 };

/** Every (key, nonce) pair either peer encrypted with, to assert none is used twice. */
export class NonceLedger {
  readonly seen = new Set<string>();
  readonly reused: string[] = [];
  readonly record = (key: string, nonce: Uint8Array): void => {
    const entry = `${key}/${Buffer.from(nonce).toString('hex')}`;
    if (this.seen.has(entry)) this.reused.push(entry);
    this.seen.add(entry);
  };
}

export interface PeerConfig {
  identity: Identity;
  directory: string;
  ledger: NonceLedger;
  options?: Partial<KudosSessionOptions>;
  initial?: { peerCapability?: PeerCapability; bootstrap?: SecretPair };
  random?: (n: number) => Uint8Array;
}

/** A peer whose in-memory state can be dropped and reloaded from its directory (a crash). */
export class Peer {
  session!: KudosSession;
  events: KudosEvent[] = [];
  /** The Echo values this peer issued since it booted (RFC 8613 B.1.2 challenges); a crash forgets them. */
  #issued = new Set<string>();
  constructor(readonly config: PeerConfig) {
    this.boot();
  }

  /** unprotectRequest, with the freshness proof of an Echo value this peer issued since it booted. */
  unprotectRequest(message: CoapMessage): UnprotectedRequest {
    return this.session.unprotectRequest(message, {
      provenFresh: (inner) => {
        const echo = getOption(inner, OptionNumber.Echo);
        return echo !== undefined && this.#issued.has(hex(echo));
      },
    });
  }

  /** The protected 4.01 with a new Echo value for a request refused with `challenge`. */
  challenge(request: ChallengeHandle): CoapMessage {
    const echo = Uint8Array.from(randomBytes(8));
    this.#issued.add(hex(echo));
    const challenge: CoapMessage = { type: MessageType.ACK, code: 0x81, messageId: 0, token: new Uint8Array(0), options: [{ number: OptionNumber.Echo, value: echo }], payload: new Uint8Array(0) };
    return this.session.protectChallenge(challenge, request).message;
  }

  boot(): void {
    this.#issued = new Set();
    const { identity, directory, ledger, options, initial, random } = this.config;
    this.session = KudosSession.open(
      { identity, storage: new KudosFileStorage(directory, identity), reserve: 4, onEncrypt: ledger.record, ...(random ? { random } : {}), ...options },
      { masterSecret: MASTER_SECRET, masterSalt: MASTER_SALT, ...initial },
    );
  }

  /** kill -9: everything in memory is lost, the directory stays. */
  crash(): void {
    this.session = undefined as unknown as KudosSession;
    this.boot();
  }

  note(events: readonly KudosEvent[]): KudosEvent[] {
    this.events.push(...events);
    return [...events];
  }
}

export function tempDirectory(label: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `coapsec-kudos-${label}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

let messageId = 1;
export function request(path: string, payload = ''): CoapMessage {
  const id = messageId++;
  return {
    type: MessageType.CON,
    code: 0x01,
    messageId: id & 0xffff,
    token: Uint8Array.of(id >> 8, id & 0xff),
    options: path.split('/').filter(Boolean).map((segment) => ({ number: OptionNumber.UriPath, value: new TextEncoder().encode(segment) })),
    payload: new TextEncoder().encode(payload),
  };
}

export function response(to: CoapMessage, payload = ''): CoapMessage {
  return { type: MessageType.ACK, code: 0x45, messageId: to.messageId, token: to.token, options: [], payload: new TextEncoder().encode(payload) };
}

export const text = (m: CoapMessage): string => new TextDecoder().decode(m.payload);
export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const sameContext = (a: KudosSession, b: KudosSession): boolean =>
  hex(a.currentSecrets.masterSecret) === hex(b.currentSecrets.masterSecret) && hex(a.currentSecrets.masterSalt) === hex(b.currentSecrets.masterSalt);

/** `request` with an Echo option carrying `echo` (RFC 9175 §2.3: the answer to a challenge). */
export function withEcho(request: CoapMessage, echo: Uint8Array): CoapMessage {
  return { ...request, options: sortOptions([...request.options.filter((o) => o.number !== OptionNumber.Echo), { number: OptionNumber.Echo, value: echo }]) };
}

/** A 4.01 carrying Echo: the B.1.2 challenge, once verified. */
export const echoOf = (response: CoapMessage): Uint8Array | undefined => (response.code === 0x81 ? getOption(response, OptionNumber.Echo) : undefined);

/**
 * `from` sends `message` to `to`; if `to` restarted and challenges it (RFC 8613 B.1.2), `from`
 * verifies the 4.01, repeats the request with its Echo value, and `to` unprotects that.
 */
export function sendRequest(from: Peer, to: Peer, message: CoapMessage, startKudos = false): { sent: { message: CoapMessage; outgoing: OutgoingRequest }; received: UnprotectedRequest; challenged: boolean } {
  let sent = from.session.protectRequest(message, { startKudos });
  from.note(sent.events);
  let received = to.unprotectRequest(sent.message);
  to.note(received.events);
  if (received.ok || received.challenge === undefined) return { sent, received, challenged: false };
  const back = from.session.unprotectResponse(to.challenge(received.challenge), sent.outgoing);
  from.note(back.events);
  assert.ok(back.ok, `the challenge did not verify: ${!back.ok && back.reason}`);
  const echo = echoOf(back.message);
  assert.ok(echo, 'the challenge is a 4.01 with Echo');
  sent = from.session.protectRequest(withEcho(message, echo));
  from.note(sent.events);
  received = to.unprotectRequest(sent.message);
  to.note(received.events);
  return { sent, received, challenged: true };
}
