/**
 * The trust-anchor service (issue 9): authorizes a client for a resource server by the policy of
 * its configuration, then issues
 *  - a DerivedKey credential (§2): nonce 'DK.TA.C.SEQ[.RANDOM]' and K_RS-C, or
 *  - an AuthorizedPublicKey credential (§3): a MacCert for the client's key and the RS's key;
 * and sends revocations to resource servers (§2.4).
 *
 * `TrustAnchorService` is the logic (no I/O besides its counter reservations, counters.ts: a number
 * is durable in the state file or the context store before the credential carrying it leaves);
 * `addTrustAnchorResources`
 * binds it to CoAP resources that accept only OSCORE-protected requests: the OSCORE recipient's
 * name is the authenticated client name (C_id).
 *
 * Requests and responses are JSON (Content-Format 50):
 *   POST /ta/dk     {"rs": NAME}                → {"ta", "rs", "sequence", "identity", "key" (hex)}
 *   POST /ta/apk    {"rs": NAME, "spki": B64}   → {"ta", "rs", "sequence", "macCert" (b64), "serverPublicKey" (PEM)}
 *   POST /ta/revoke {"rs": NAME, "sequence": N} → {"rs", "sequence", "result"}   (administrators only)
 * Errors: 4.00 malformed, 4.01 not OSCORE, 4.03 not authorized by the policy, 4.04 unknown RS,
 * 5.03 sequence numbers exhausted or their store unavailable, 5.02 the RS did not accept a revocation.
 */
import { randomBytes } from 'node:crypto';
import { ResponseCode } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import type { CoapRequest, CoapResponse } from '../server/resource.js';
import type { CoapServer } from '../server/server.js';
import { parseP256Spki, spkiOf } from '../dtls/connection.js';
import type { ResourceServerEntry, TrustAnchorConfig } from './config.js';
import { CounterBlocks, SequenceExhaustedError, StateFileCounters, type CounterReservations } from './counters.js';
import { deriveKey, formatNonce, isValidId } from './derive.js';
import { encodeMacCert, issueMacCert } from './maccert.js';
import { encodeRevocation } from './revocation.js';

export class TrustAnchorError extends Error {
  constructor(
    readonly kind: 'bad-request' | 'forbidden' | 'unknown-rs' | 'exhausted' | 'unavailable' | 'store-unavailable',
    message: string,
  ) {
    super(message);
    this.name = 'TrustAnchorError';
  }
}

export interface DerivedKeyCredential {
  ta: string;
  rs: string;
  sequence: number;
  /** The nonce, used as psk_identity. */
  identity: string;
  key: Buffer;
}

export interface AuthzCredential {
  ta: string;
  rs: string;
  sequence: number;
  macCert: Buffer;
  serverPublicKeyPem: string;
}

export type RevocationSender = (uri: string, payload: Buffer, rs: ResourceServerEntry) => Promise<string>;

export interface TrustAnchorServiceOptions {
  /** Where counter reservations are made durable. Default: the config's `stateFile` (StateFileCounters). */
  counters?: CounterReservations;
  /** Random bytes for DK nonces. Default crypto.randomBytes. */
  random?: (n: number) => Buffer;
}

export class TrustAnchorService {
  readonly counters: CounterBlocks;
  private readonly random: (n: number) => Buffer;
  /** Audit trail: every decision (tests and -v output read it). */
  readonly log: string[] = [];
  /** Called with every audit line as it happens. */
  onLog: ((line: string) => void) | undefined;

  note(line: string): void {
    this.log.push(line);
    this.onLog?.(line);
  }

  constructor(
    readonly config: Pick<TrustAnchorConfig, 'id' | 'stateFile' | 'reservationBlock' | 'randomNonce' | 'keysWithoutZeroBytes' | 'macLength' | 'resourceServers' | 'policy' | 'administrators'>,
    options: TrustAnchorServiceOptions = {},
  ) {
    this.random = options.random ?? randomBytes;
    const reservations = options.counters ?? (config.stateFile !== undefined ? new StateFileCounters(config.stateFile) : undefined);
    if (reservations === undefined) throw new TypeError('a trust anchor needs a stateFile or counter reservations in a context store');
    this.counters = new CounterBlocks(reservations, config.reservationBlock);
  }

  /** Closes the counter reservations (a context store's connection). */
  close(): Promise<void> {
    return this.counters.close();
  }

  private authorize(client: string, rsName: string): ResourceServerEntry {
    const rs = this.config.resourceServers.get(rsName);
    const allowed = this.config.policy.get(client);
    if (!allowed || !(allowed.has(rsName) || allowed.has('*'))) {
      this.note(`refused ${client} → ${rsName}: not in policy`);
      throw new TrustAnchorError('forbidden', `client "${client}" may not reach "${rsName}"`);
    }
    if (!rs) throw new TrustAnchorError('unknown-rs', `unknown resource server "${rsName}"`);
    return rs;
  }

  private async nextSequence(rs: ResourceServerEntry): Promise<number> {
    try {
      return await this.counters.next(rs.name, rs.key);
    } catch (e) {
      throw this.counterFailure(rs, e);
    }
  }

  private counterFailure(rs: ResourceServerEntry, e: unknown): Error {
    if (e instanceof SequenceExhaustedError) {
      this.note(`exhausted ${rs.name}`);
      return new TrustAnchorError('exhausted', e.message);
    }
    // The store's own message names it and why; the client learns only that it is unavailable.
    this.note(`counter reservation for ${rs.name} failed: ${(e as Error).message}`);
    return new TrustAnchorError('store-unavailable', `sequence numbers for "${rs.name}" cannot be reserved now; try again later`);
  }

  /** §2.1/§2.2: a nonce and K_RS-C for `client` at `rsName`. */
  async derivedKey(client: string, rsName: string): Promise<DerivedKeyCredential> {
    const rs = this.authorize(client, rsName);
    if (!isValidId(client)) throw new TrustAnchorError('forbidden', `client name "${client}" cannot be a DK C_id (1-32 of A-Z a-z 0-9 _ : @ -)`);
    return this.issueDk(client, rs);
  }

  private async issueDk(client: string, rs: ResourceServerEntry): Promise<DerivedKeyCredential> {
    const sequence = await this.nextSequence(rs);
    for (;;) {
      const random = this.config.randomNonce ? this.random(16).toString('hex') : undefined;
      const identity = formatNonce({ taId: this.config.id, clientId: client, sequence, ...(random ? { random } : {}) });
      const key = deriveKey(rs.key, identity, rs.keyLength);
      // Redrawing the random part changes the key, not its distribution's entropy by more than ~0.1 bit.
      if (this.config.keysWithoutZeroBytes && key.includes(0)) continue;
      this.note(`issued DK ${rs.name} seq ${sequence} to ${client}`);
      return { ta: this.config.id, rs: rs.name, sequence, identity, key };
    }
  }

  /**
   * A DerivedKey credential for the TA itself (C_id = TA_id), used to reach a coaps:// revocation
   * URI. Not subject to the client policy.
   */
  async ownDerivedKey(rsName: string): Promise<DerivedKeyCredential> {
    const rs = this.config.resourceServers.get(rsName);
    if (!rs) throw new TrustAnchorError('unknown-rs', `unknown resource server "${rsName}"`);
    return this.issueDk(this.config.id, rs);
  }

  /** §3: a MacCert for the client's P-256 key at `rsName`, with the RS's public key. */
  async authzCertificate(client: string, rsName: string, spki: Buffer): Promise<AuthzCredential> {
    const rs = this.authorize(client, rsName);
    if (!rs.publicKey) throw new TrustAnchorError('unavailable', `resource server "${rs.name}" has no publicKey configured for the AuthorizedPublicKey mode`);
    if (!parseP256Spki(spki)) throw new TrustAnchorError('bad-request', 'spki must be an EC P-256 SubjectPublicKeyInfo');
    const sequence = await this.nextSequence(rs);
    const macCert = encodeMacCert(issueMacCert(rs.key, spki, this.config.id, sequence, this.config.macLength));
    this.note(`issued MacCert ${rs.name} seq ${sequence} to ${client}`);
    return { ta: this.config.id, rs: rs.name, sequence, macCert, serverPublicKeyPem: rs.publicKey.export({ type: 'spki', format: 'pem' }).toString() };
  }

  /** The revocation message for `sequence` at `rsName` (the caller delivers it). */
  async revocation(client: string, rsName: string, sequence: number): Promise<{ rs: ResourceServerEntry; payload: Buffer }> {
    if (!this.config.administrators.has(client)) {
      this.note(`refused revocation by ${client}`);
      throw new TrustAnchorError('forbidden', `client "${client}" may not revoke`);
    }
    const rs = this.config.resourceServers.get(rsName);
    if (!rs) throw new TrustAnchorError('unknown-rs', `unknown resource server "${rsName}"`);
    let issued: boolean;
    try {
      issued = await this.counters.mayHaveIssued(rs.name, rs.key, sequence);
    } catch (e) {
      throw this.counterFailure(rs, e);
    }
    if (!issued) throw new TrustAnchorError('bad-request', `sequence ${sequence} was not issued for "${rsName}"`);
    this.note(`revoking ${rs.name} seq ${sequence} (by ${client})`);
    return { rs, payload: encodeRevocation(rs.key, this.config.id, sequence) };
  }
}

const CODE: Record<TrustAnchorError['kind'], number> = {
  'bad-request': ResponseCode.BadRequest,
  forbidden: ResponseCode.Forbidden,
  'unknown-rs': ResponseCode.NotFound,
  exhausted: ResponseCode.ServiceUnavailable,
  unavailable: ResponseCode.BadGateway,
  'store-unavailable': ResponseCode.ServiceUnavailable,
};

function json(code: number, body: unknown): CoapResponse {
  return { code, contentFormat: ContentFormat.Json, payload: JSON.stringify(body) };
}

function fail(e: unknown): CoapResponse {
  if (e instanceof TrustAnchorError) return { code: CODE[e.kind], contentFormat: ContentFormat.TextPlain, payload: e.message };
  return { code: ResponseCode.InternalServerError, contentFormat: ContentFormat.TextPlain, payload: 'internal error' };
}

function body(req: CoapRequest): Record<string, unknown> {
  try {
    const v = JSON.parse(req.payload.toString('utf8')) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new TrustAnchorError('bad-request', 'payload must be a JSON object');
}

function client(req: CoapRequest): string {
  const peer = req.context.oscore?.[0]?.peer;
  if (!peer) throw new TrustAnchorError('forbidden', 'unauthenticated');
  return peer;
}

function rsName(b: Record<string, unknown>): string {
  if (typeof b['rs'] !== 'string') throw new TrustAnchorError('bad-request', '"rs" must be a string');
  return b['rs'];
}

/** Binds the service to /ta/dk, /ta/apk and /ta/revoke (OSCORE only). */
export function addTrustAnchorResources(server: CoapServer, service: TrustAnchorService, sendRevocation: RevocationSender): void {
  server.resource(
    '/ta/dk',
    {
      POST: async (req) => {
        try {
          const c = await service.derivedKey(client(req), rsName(body(req)));
          return json(ResponseCode.Content, { ta: c.ta, rs: c.rs, sequence: c.sequence, identity: c.identity, key: c.key.toString('hex') });
        } catch (e) {
          return fail(e);
        }
      },
    },
    { requireOscore: true, title: 'DerivedKey credential (nonce, K_RS-C)' },
  );
  server.resource(
    '/ta/apk',
    {
      POST: async (req) => {
        try {
          const b = body(req);
          if (typeof b['spki'] !== 'string') throw new TrustAnchorError('bad-request', '"spki" must be base64 DER');
          const c = await service.authzCertificate(client(req), rsName(b), Buffer.from(b['spki'], 'base64'));
          return json(ResponseCode.Content, { ta: c.ta, rs: c.rs, sequence: c.sequence, macCert: c.macCert.toString('base64'), serverPublicKey: c.serverPublicKeyPem });
        } catch (e) {
          return fail(e);
        }
      },
    },
    { requireOscore: true, title: 'AuthorizedPublicKey credential (MacCert)' },
  );
  server.resource(
    '/ta/revoke',
    {
      POST: async (req) => {
        try {
          const b = body(req);
          if (typeof b['sequence'] !== 'number') throw new TrustAnchorError('bad-request', '"sequence" must be a number');
          const { rs, payload } = await service.revocation(client(req), rsName(b), b['sequence']);
          if (!rs.revocationUri) throw new TrustAnchorError('unavailable', `resource server "${rs.name}" has no revocationUri`);
          let result: string;
          try {
            result = await sendRevocation(rs.revocationUri, payload, rs);
          } catch (e) {
            throw new TrustAnchorError('unavailable', `revocation not delivered to ${rs.name}: ${(e as Error).message}`);
          }
          service.note(`revocation ${rs.name} seq ${b['sequence']}: ${result}`);
          return json(ResponseCode.Changed, { rs: rs.name, sequence: b['sequence'], result });
        } catch (e) {
          return fail(e);
        }
      },
    },
    { requireOscore: true, title: 'revoke a sequence number at a resource server' },
  );
}

export { spkiOf };
