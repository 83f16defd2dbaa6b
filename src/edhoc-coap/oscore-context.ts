/**
 * The OSCORE Security Context of an EDHOC session (RFC 9528 App. A.1), and the connection
 * identifiers an endpoint may choose so that the context's Recipient ID collides with no other
 * (RFC 9668 §4.1.1, §4.1.2).
 */
import { randomBytes } from 'node:crypto';
import { CoseHash } from '../cose/index.js';
import { EdhocConfigError } from '../edhoc/errors.js';
import type { EdhocSession } from '../edhoc/session.js';
import { aeadAlgorithm, HkdfId } from '../oscore/algorithms.js';
import { OscoreSecurityContext, VolatileSequence, type SequenceSource } from '../oscore/security-context.js';
import { bytesToHex as hex } from '../util/bytes.js';

export interface EdhocContextOptions {
  /**
   * Where the context's Sender Sequence Numbers come from. Default: from 0 in memory. The keys
   * of an EDHOC context are never written anywhere (that is what gives forward secrecy), so the
   * context does not survive a restart and its counter needs no persistence: after a restart the
   * peers run EDHOC again and get new keys (RFC 8613 App. B.1's "use a new security context").
   * A caller that keeps contexts across restarts passes a persistent source here.
   */
  readonly sequence?: (session: EdhocSession) => SequenceSource;
  readonly replayWindow?: number;
}

/** A.1: "the HKDF Algorithm SHALL be the one based on the application hash algorithm". */
export function oscoreHkdfFor(applicationHash: number): number {
  if (applicationHash === CoseHash.SHA_256) return HkdfId.HKDF_SHA_256;
  if (applicationHash === CoseHash.SHA_384) return HkdfId.HKDF_SHA_384;
  throw new EdhocConfigError(`no OSCORE HKDF for the application hash ${applicationHash}`);
}

/** The longest OSCORE Sender/Recipient ID the suite's application AEAD allows (RFC 8613 §5.2: nonce length − 6). */
export const maxOscoreIdLength = (session: Pick<EdhocSession, 'suite'>): number => aeadAlgorithm(session.suite.appAead).maxIdLength;

/**
 * A.1: Master Secret and Salt from the exporter, the application AEAD and HKDF, Sender ID C_R
 * (Initiator) or C_I (Responder). The peer name handlers authorize on is the authenticated
 * credential's subject, else the peer's connection identifier.
 */
export function edhocOscoreContext(session: EdhocSession, options: EdhocContextOptions = {}): OscoreSecurityContext {
  return new OscoreSecurityContext(edhocOscoreParameters(session, options), options.sequence?.(session) ?? new VolatileSequence(0));
}

/** The parameters edhocOscoreContext makes its context from (a context store writes them for other nodes). */
export function edhocOscoreParameters(session: EdhocSession, options: Pick<EdhocContextOptions, 'replayWindow'> = {}) {
  const params = session.oscore();
  const longest = maxOscoreIdLength(session);
  if (params.senderId.length > longest || params.recipientId.length > longest) throw new EdhocConfigError(`a connection identifier is longer than the ${longest} bytes an OSCORE ID may have with this suite`);
  const name = session.peer.subject ?? `edhoc ${Buffer.from(params.senderId).toString('hex')}`;
  return {
    masterSecret: params.masterSecret,
    masterSalt: params.masterSalt,
    senderId: params.senderId,
    recipientIds: [params.recipientId],
    aead: params.aeadAlgorithm,
    hkdf: oscoreHkdfFor(params.hashAlgorithm),
    name,
    ...(options.replayWindow !== undefined ? { replayWindow: options.replayWindow } : {}),
  };
}

/**
 * Connection identifiers in use by one endpoint (RFC 9668 §4.1.1/§4.1.2): a new one is neither an
 * identifier of a current EDHOC session nor a Recipient ID of a current OSCORE context without ID
 * Context, nor a value the caller excludes (the peer's C_I). Random, and short first: one byte,
 * then two once sixteen tries found no free one-byte value, and so on.
 */
export class ConnectionIdentifiers {
  readonly #inUse = new Set<string>();

  /**
   * `alsoInUse`: identifiers listed per allocation (a few); `isTaken`: a question asked per
   * candidate, for identifiers too many to list — a server's configured contexts, one per device
   * (issue 21), which a list made per handshake would walk and hex-encode every time.
   */
  constructor(
    private readonly alsoInUse: () => Iterable<Uint8Array> = () => [],
    private readonly isTaken: (id: Uint8Array) => boolean = () => false,
  ) {}

  /** `minLength` above 1 when identifiers must be unlikely to meet those other endpoints choose (nodes sharing a context store). */
  allocate(maxLength: number, exclude?: Uint8Array, minLength = 1): Uint8Array {
    const taken = new Set(this.#inUse);
    for (const id of this.alsoInUse()) taken.add(hex(id));
    if (exclude !== undefined) taken.add(hex(exclude));
    for (let length = Math.min(minLength, maxLength); length <= maxLength; length++) {
      for (let attempt = 0; attempt < 16; attempt++) {
        const candidate = Uint8Array.from(randomBytes(length));
        if (!taken.has(hex(candidate)) && !this.isTaken(candidate)) {
          this.#inUse.add(hex(candidate));
          return candidate;
        }
      }
    }
    throw new EdhocConfigError('no free connection identifier');
  }

  release(id: Uint8Array): void {
    this.#inUse.delete(hex(id));
  }

  has(id: Uint8Array): boolean {
    return this.#inUse.has(hex(id));
  }
}
