/** Two in-process KUDOS peers (a CoAP client and server sharing one OSCORE context) for the kudos-* tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CoapMessage } from '../src/coap/message.js';
import { MessageType } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { type ContextMaterial, type KudosEvent, KudosFileStorage, KudosSession, type KudosSessionOptions, type PeerCapability, type SecretPair } from '../src/kudos/index.js';

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
  constructor(readonly config: PeerConfig) {
    this.boot();
  }

  boot(): void {
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
