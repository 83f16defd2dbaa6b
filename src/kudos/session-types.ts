/** The vocabulary of a KUDOS session (session.ts): its states, the events it returns and its options. */
import type { CoapMessage } from '../coap/message.js';
import type { RequestBinding } from '../oscore/protect.js';
import type { KudosStorage } from './persistence.js';
import type { ContextMaterial } from './update-ctx.js';

export type KudosState = 'IDLE' | 'BUSY' | 'PENDING';

export type KudosEvent =
  | { type: 'state'; from: KudosState; to: KudosState }
  /** Entering BUSY (01) obliges the next outgoing message to this peer to be convergent (§4.3.3.4). */
  | { type: 'send-convergent' }
  /** Key confirmation; `preserveObservations` false: terminate every observation with the peer (§4.3.5, §4.5). */
  | { type: 'completed'; preserveObservations: boolean; noForwardSecrecy: boolean }
  /** An execution was abandoned (§4.3.3.5 steps "Abort the ongoing KUDOS execution"). */
  | { type: 'aborted'; reason: string };

export interface KudosSessionOptions {
  /** Sender ID, Recipient ID, ID Context and algorithms: what KUDOS never changes (§4). */
  identity: Omit<ContextMaterial, 'masterSecret' | 'masterSalt'>;
  storage: KudosStorage;
  /** B.1.1's K: Sender Sequence Numbers reserved per durable write. Default 64. */
  reserve?: number;
  /** Nonce length in bytes (§4.3.1 recommends 8). */
  nonceLength?: number;
  /** The 'b' bit we send (§4.5). Default false. */
  preserveObservations?: boolean;
  /** §4.5.1 steps 1-3: the Partial IVs of our ongoing Observe registrations with the peer. */
  observationPartialIvs?: () => readonly number[];
  /** §4.6: keep CTX_OLD this long after key confirmation, for late incoming non KUDOS messages. */
  retainOldMs?: number;
  now?: () => number;
  random?: (length: number) => Uint8Array;
  /** Accounting of AEAD encryptions (key usage limits, tests): a key fingerprint and the nonce. */
  onEncrypt?: (keyFingerprint: string, nonce: Uint8Array) => void;
  replayWindow?: number;
  /**
   * Failed decryptions under the current Recipient Key after which it is refused (§4.3's hard
   * limits). Default: the AEAD's integrity limit (policy.ts aeadIntegrityLimit).
   */
  integrityLimit?: number;
  /**
   * The peer keeps §4.3.7 — no non KUDOS message while an execution runs — as this stack's gate
   * does: then a fresh non KUDOS message under CTX_OLD while PENDING means the peer left the
   * execution, and it is aborted on CTX_OLD. Without it (default) such a message may be one that
   * was in transit, and PENDING stays.
   */
  peerKeepsQuiet?: boolean;
}

/** What a verified request is bound to: give it back to protectResponse. */
export interface IncomingRequest {
  readonly binding: RequestBinding;
  /** Which context verified it (its response may need another, §3). */
  readonly via: 'current' | 'next' | 'retained' | 'temp';
}

/** What a protected request is bound to: give it back to unprotectResponse. */
export interface OutgoingRequest {
  readonly binding: RequestBinding;
}

export type UnprotectedRequest =
  | { ok: true; message: CoapMessage; request: IncomingRequest; kudos: boolean; events: KudosEvent[] }
  | {
      ok: false;
      code: number;
      reason: string;
      events: KudosEvent[];
      /**
       * The request decrypted, but under a context whose replay window is not set since the
       * restart (RFC 8613 Appendix B.1.2): answer it with `protectChallenge` (a 4.01 with Echo)
       * and do not process it.
       */
      challenge?: ChallengeHandle;
      /**
       * The request verified under a Recipient Key past its integrity limit: it is not processed
       * (§4.3: no application data under that key), but it authenticates the peer, so answer it
       * with a KUDOS message — `protectResponse(challenge, keyUpdate, { startKudos: true })`, the
       * reverse flow of A.2 — to replace the key.
       */
      keyUpdate?: IncomingRequest;
    };

/** A request refused for a B.1.2 Echo challenge: give it to protectChallenge. */
export interface ChallengeHandle extends IncomingRequest {
  /** The request came under CTX_NEW, or a CTX_TEMP derived from it: its sender holds CTX_NEW. */
  readonly peerHoldsNew: boolean;
}

export type UnprotectedResponse =
  | { ok: true; message: CoapMessage; /** The response's own Partial IV, when it had one. */ sequenceNumber?: number; kudos: boolean; events: KudosEvent[] }
  | { ok: false; reason: string; events: KudosEvent[] };
