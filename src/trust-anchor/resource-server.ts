/**
 * Resource-server side of the trust-anchor modes: the trust anchors of the ACL (§4) with their
 * keys K_RS-TA and sequence-number windows, used by the DTLS engine through
 *  - `pskStore(fallback)`: DerivedKey identities ('DK.' prefix, §2.3), other identities go to the
 *    ordinary PSK table;
 *  - `authz(privateKey)`: AuthorizedPublicKey MacCerts (§3.3);
 *  - `handleRevocation(payload)` / `revoke(id, seq)`: revocations (§2.4).
 *
 * Order of checks for a DK identity: syntax and known TA id, then the sequence number against the
 * window (before any key is derived, §2.4), then derivation. For a MacCert: known TA id, sequence
 * number, SubjectPublicKeyInfo (EC P-256), MAC (§3.3). The window is updated only from the
 * engine's handshake-success hook, which re-checks it: of two concurrent handshakes with the same
 * sequence number only the first to finish succeeds.
 */
import type { KeyObject } from 'node:crypto';
import { AlertDescription, TlsAlertError } from '../dtls/alerts.js';
import { parseP256Spki, type AuthzGrant, type AuthzServerCredentials, type PskGrant, type PskStore } from '../dtls/connection.js';
import { deriveKey, isDkIdentity, isValidId, parseNonce } from './derive.js';
import { decodeMacCert, macMatches, MacCertError } from './maccert.js';
import { decodeRevocation, revocationMacValid } from './revocation.js';
import { DEFAULT_WINDOW, SlidingWindow, type WindowState } from './window.js';

export interface TrustAnchorEntry {
  /** TA_id as it appears in nonces and MacCerts. */
  id: string;
  /** K_RS-TA. */
  key: Uint8Array;
  /** Sliding-window size (default 64, minimum 32). */
  window?: number;
  /** Length of K_RS-C in bytes: 16 (default) or 32. */
  keyLength?: 16 | 32;
}

export type RejectReason = 'unknown-ta' | 'malformed' | 'replayed' | 'left-of-window' | 'bad-spki' | 'bad-mac' | 'raced';

export interface TrustAnchorVerifierOptions {
  /** Windows restored from a previous run (by TA id). */
  initialState?: Record<string, WindowState>;
  /** Called after every window change (persist it to survive restarts). */
  onWindowChange?: (state: Record<string, WindowState>) => void;
  /** Called for every refusal (logging, tests). */
  onReject?: (reason: RejectReason, detail: string) => void;
}

interface Anchor {
  id: string;
  key: Buffer;
  keyLength: 16 | 32;
  window: SlidingWindow;
}

export class TrustAnchorVerifier {
  private readonly anchors = new Map<string, Anchor>();
  readonly rejections: Record<RejectReason, number> = { 'unknown-ta': 0, malformed: 0, replayed: 0, 'left-of-window': 0, 'bad-spki': 0, 'bad-mac': 0, raced: 0 };

  constructor(
    entries: readonly TrustAnchorEntry[],
    private readonly options: TrustAnchorVerifierOptions = {},
  ) {
    for (const e of entries) {
      if (!isValidId(e.id)) throw new RangeError(`trust anchor id "${e.id}" is not valid`);
      if (this.anchors.has(e.id)) throw new RangeError(`trust anchor "${e.id}" listed twice`);
      if (e.key.length < 16) throw new RangeError(`trust anchor "${e.id}": K_RS-TA must be at least 16 bytes`);
      const keyLength = e.keyLength ?? 16;
      if (keyLength !== 16 && keyLength !== 32) throw new RangeError(`trust anchor "${e.id}": keyLength must be 16 or 32`);
      const size = e.window ?? DEFAULT_WINDOW;
      const saved = options.initialState?.[e.id];
      const window = saved && saved.size === size ? SlidingWindow.restore(saved) : new SlidingWindow(size);
      if (saved && saved.size !== size) window.mark(saved.right); // a resized window keeps its right edge
      this.anchors.set(e.id, { id: e.id, key: Buffer.from(e.key), keyLength, window });
    }
  }

  get ids(): string[] {
    return [...this.anchors.keys()];
  }

  windowOf(id: string): SlidingWindow | undefined {
    return this.anchors.get(id)?.window;
  }

  state(): Record<string, WindowState> {
    return Object.fromEntries([...this.anchors.values()].map((a) => [a.id, a.window.state()]));
  }

  private reject(reason: RejectReason, detail: string, description: number): never {
    this.rejections[reason]++;
    this.options.onReject?.(reason, detail);
    throw new TlsAlertError(description, detail);
  }

  private commit(anchor: Anchor, sequence: number, description: number): () => void {
    return () => {
      if (!anchor.window.mark(sequence)) this.reject('raced', `trust anchor ${anchor.id}: sequence number ${sequence} was used by a concurrent handshake`, description);
      this.options.onWindowChange?.(this.state());
    };
  }

  private freshness(anchor: Anchor, sequence: number, description: number): void {
    const verdict = anchor.window.check(sequence);
    if (verdict === 'replayed') this.reject('replayed', `trust anchor ${anchor.id}: sequence number ${sequence} already used or revoked`, description);
    if (verdict === 'left-of-window') this.reject('left-of-window', `trust anchor ${anchor.id}: sequence number ${sequence} is left of the window (highest ${anchor.window.highest})`, description);
    if (verdict === 'invalid') this.reject('malformed', `sequence number ${sequence} out of range`, description);
  }

  /** A DerivedKey grant for a 'DK.' identity; undefined for any other identity. Throws TlsAlertError on refusal. */
  dkGrant(identity: Uint8Array): PskGrant | undefined {
    if (!isDkIdentity(identity)) return undefined;
    const fail = AlertDescription.UnknownPskIdentity;
    const nonce = parseNonce(identity);
    if (!nonce) return this.reject('malformed', 'malformed DerivedKey nonce', fail);
    const anchor = this.anchors.get(nonce.taId);
    if (!anchor) return this.reject('unknown-ta', `unknown trust anchor "${nonce.taId}"`, fail);
    this.freshness(anchor, nonce.sequence, fail); // §2.4: the first check, before deriving
    return { key: deriveKey(anchor.key, identity, anchor.keyLength), onHandshakeSuccess: this.commit(anchor, nonce.sequence, fail) };
  }

  /** The engine's pskStore: DK identities here, everything else from `fallback`. */
  pskStore(fallback?: PskStore): PskStore {
    return (identity) => this.dkGrant(identity) ?? fallback?.(identity);
  }

  /** §3.3 verification of a MacCert; throws (→ bad_certificate) on any failure. */
  verifyMacCert(body: Buffer): AuthzGrant {
    const bad = AlertDescription.BadCertificate;
    let cert;
    try {
      cert = decodeMacCert(body);
    } catch (e) {
      return this.reject('malformed', (e as MacCertError).message, bad);
    }
    const anchor = this.anchors.get(cert.trustAnchorId);
    if (!anchor) return this.reject('unknown-ta', `unknown trust anchor "${cert.trustAnchorId}"`, bad);
    this.freshness(anchor, cert.sequence, bad);
    const publicKey: KeyObject | null = parseP256Spki(cert.spki);
    if (!publicKey) return this.reject('bad-spki', 'MacCert SubjectPublicKeyInfo is not an EC P-256 key', bad);
    if (!macMatches(anchor.key, cert)) return this.reject('bad-mac', `MacCert MAC does not verify under trust anchor ${anchor.id}`, bad);
    return { publicKey, spki: cert.spki, trustAnchor: { id: anchor.id, sequence: cert.sequence }, onHandshakeSuccess: this.commit(anchor, cert.sequence, bad) };
  }

  /** Engine credentials for the AuthorizedPublicKey mode. */
  authz(privateKey: KeyObject): AuthzServerCredentials {
    return { privateKey, verifyCertificate: (body) => this.verifyMacCert(body) };
  }

  /** Marks a sequence number used (§2.4 revocation). */
  revoke(taId: string, sequence: number): 'revoked' | 'already-used' | 'unknown-ta' {
    const anchor = this.anchors.get(taId);
    if (!anchor) return 'unknown-ta';
    if (!anchor.window.mark(sequence)) return 'already-used';
    this.options.onWindowChange?.(this.state());
    return 'revoked';
  }

  /** Authenticates and applies a revocation message (src/trust-anchor/revocation.ts). */
  handleRevocation(payload: Uint8Array): 'revoked' | 'already-used' | 'unknown-ta' | 'malformed' | 'bad-mac' {
    const r = decodeRevocation(payload);
    if (!r) return 'malformed';
    const anchor = this.anchors.get(r.taId);
    if (!anchor) return 'unknown-ta';
    if (!revocationMacValid(anchor.key, r)) return 'bad-mac';
    return this.revoke(r.taId, r.sequence);
  }
}
