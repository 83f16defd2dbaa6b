/**
 * The AEAD work a security layer cannot avoid, alone: plain CoAP in which each side also performs
 * exactly the AEAD operations the layer would cost it per GET, and nothing else of the layer.
 * The ratio of such a contender to plain bounds every implementation of that layer on Node's
 * crypto on this machine from above.
 *
 * OSCORE (variant 'aead-floor' of bench/server.ts and bench/client.ts, OscoreAeadFloor): each
 * side performs exactly the AEAD operations an OSCORE GET costs it — the client seals a request and opens a response, the server opens a
 * request and seals a response (RFC 8613 §8.1–§8.4) — with the benchmark's real keys, through
 * the same `aeadAlgorithm(AES-CCM-16-64-128)` path as src/oscore, on the benchmark's plaintext
 * sizes. No OSCORE option, no COSE, no option classes.
 *
 * 'aead-floor-batched' (OscoreBatchedAeadFloor) is the least AES-CCM work Node's crypto allows for
 * the same operations: each seal and open costs one AES call (the CBC-MAC), and the CTR keystreams
 * of 16 consecutive nonces come from one more AES call (`AesCcm.keystreams`), as an
 * implementation that knows its next nonces could do it. Since issue 21 (h21-oscore) src/oscore
 * does this through AesCcm.keystreamAhead, and OscoreAeadFloor takes the same path (its figure is
 * that of the batched floor: two AES calls per message and one per 16 for the keystreams).
 *
 * DTLS (variant 'record-floor', DtlsRecordFloor): each side encrypts the records it sends and
 * decrypts the records it receives with TLS_PSK_WITH_AES_128_CCM_8's record protection
 * (src/dtls/cipher.ts and ccm8.ts: nonce, additional_data, AES-CCM with batched keystreams; the
 * records received are the peer's consecutive ones, as in a session), with no handshake, record
 * header, replay window or session lookup.
 */
import { AesCcm } from '../src/crypto/aes-ccm.js';
import { deriveContext, nonce } from '../src/oscore/context.js';
import { AeadId, aeadAlgorithm } from '../src/oscore/algorithms.js';
import { encodePartialIv } from '../src/oscore/option.js';
import { randomBytes } from 'node:crypto';
import { ContentType, DTLS_1_2 } from '../src/dtls/record.js';
import { createRecordProtection, type RecordProtection } from '../src/dtls/cipher.js';
import { OSCORE_MASTER_SALT, OSCORE_MASTER_SECRET, PAYLOAD, type Variant } from './common.js';

const AEAD = aeadAlgorithm(AeadId.AES_CCM_16_64_128);
/** The benchmark's inner plaintexts (bench/oscore.ts micro-benchmarks): GET with Uri-Path "bench", 2.05 with 20 bytes. */
const REQUEST_PLAINTEXT = Buffer.alloc(7, 0x01);
const RESPONSE_PLAINTEXT = Buffer.alloc(22, 0x45);
/** The encoded Enc_structure (§5.3) for an empty kid and a 1–3-byte Partial IV is 11–13 bytes. */
const AAD = Buffer.alloc(12, 0x83);

const CLIENT_ID = Buffer.alloc(0);
const SERVER_ID = Buffer.from('01', 'hex');

export type Side = 'client' | 'server';

/**
 * One side's AEAD work per GET: `seal()` what this side sends, `open()` what it receives. `open()`
 * throws if the prepared ciphertext does not authenticate: the floor must be real work.
 */
export class OscoreAeadFloor {
  readonly #sealKey: Uint8Array;
  readonly #openKey: Uint8Array;
  readonly #commonIv: Uint8Array;
  readonly #senderId: Uint8Array;
  readonly #plaintext: Buffer;
  /** What the peer would send: sealed once, opened (and so authenticated) on every request. */
  readonly #incoming: { nonce: Uint8Array; ciphertext: Uint8Array };
  #sequence = 0;
  #opened = 0;

  constructor(side: Side) {
    const client = deriveContext({ masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: CLIENT_ID, recipientId: SERVER_ID });
    // The client's Sender Key is the server's Recipient Key and the other way round (§3.2.1).
    this.#sealKey = side === 'client' ? client.senderKey : client.recipientKey;
    this.#openKey = side === 'client' ? client.recipientKey : client.senderKey;
    this.#commonIv = client.commonIv;
    this.#senderId = side === 'client' ? CLIENT_ID : SERVER_ID;
    this.#plaintext = side === 'client' ? REQUEST_PLAINTEXT : RESPONSE_PLAINTEXT;
    const peerPlaintext = side === 'client' ? RESPONSE_PLAINTEXT : REQUEST_PLAINTEXT;
    const peerNonce = nonce(this.#commonIv, side === 'client' ? SERVER_ID : CLIENT_ID, encodePartialIv(1));
    this.#incoming = { nonce: peerNonce, ciphertext: AEAD.seal(this.#openKey, peerNonce, AAD, peerPlaintext) };
  }

  /**
   * The client's request or the server's response, under a fresh nonce; with its Partial IV, as
   * src/oscore passes it, so AES-CCM computes the next nonces' keystreams in the same AES call.
   */
  seal(): void {
    const sequence = this.#sequence++ & 0xffffff;
    const sealNonce = nonce(this.#commonIv, this.#senderId, encodePartialIv(sequence));
    AEAD.seal(this.#sealKey, sealNonce, AAD, this.#plaintext, sequence);
  }

  /**
   * The server's response on the client, the client's request on the server (always the same
   * message: its keystream is computed once per batch of 16, as consecutive Partial IVs' are).
   */
  open(): void {
    if (AEAD.open(this.#openKey, this.#incoming.nonce, AAD, this.#incoming.ciphertext, this.#opened++ % 16 === 0 ? undefined : 1) === undefined) {
      throw new Error('aead-floor: the prepared ciphertext did not authenticate');
    }
  }
}

/** Nonces per `keystreams` call in the batched floor. */
const BATCH = 16;
const NONCE_LENGTH = 13;
const TAG_LENGTH = 8;
const blocksFor = (plaintext: Uint8Array): number => 1 + Math.ceil(plaintext.length / 16);

/** OscoreAeadFloor's work with batched CTR keystreams: one AES call per seal or open, one per 16 nonces. */
export class OscoreBatchedAeadFloor {
  readonly #sealCcm: AesCcm;
  readonly #openCcm: AesCcm;
  readonly #commonIv: Uint8Array;
  readonly #senderId: Uint8Array;
  readonly #plaintext: Buffer;
  readonly #sealed: Buffer;
  /** BATCH messages of the peer, under consecutive nonces: opened in turn, each against a batch keystream. */
  readonly #incoming: { nonces: Buffer; ciphertexts: Buffer[]; blocks: number };
  #sequence = 0;
  #sealStreams: Buffer | undefined;
  #openStreams: Buffer | undefined;
  #opened = 0;

  constructor(side: Side) {
    const client = deriveContext({ masterSecret: OSCORE_MASTER_SECRET, masterSalt: OSCORE_MASTER_SALT, senderId: CLIENT_ID, recipientId: SERVER_ID });
    this.#sealCcm = new AesCcm(side === 'client' ? client.senderKey : client.recipientKey, TAG_LENGTH, NONCE_LENGTH);
    const openKey = side === 'client' ? client.recipientKey : client.senderKey;
    this.#openCcm = new AesCcm(openKey, TAG_LENGTH, NONCE_LENGTH);
    this.#commonIv = client.commonIv;
    this.#senderId = side === 'client' ? CLIENT_ID : SERVER_ID;
    this.#plaintext = side === 'client' ? REQUEST_PLAINTEXT : RESPONSE_PLAINTEXT;
    this.#sealed = Buffer.alloc(this.#plaintext.length + TAG_LENGTH);
    const peerPlaintext = side === 'client' ? RESPONSE_PLAINTEXT : REQUEST_PLAINTEXT;
    const peer = new AesCcm(openKey, TAG_LENGTH, NONCE_LENGTH);
    const nonces = this.#nonces(side === 'client' ? SERVER_ID : CLIENT_ID, 1);
    const ciphertexts = Array.from({ length: BATCH }, (_, k) => peer.seal(nonces.subarray(k * NONCE_LENGTH, (k + 1) * NONCE_LENGTH), AAD, peerPlaintext));
    this.#incoming = { nonces, ciphertexts, blocks: blocksFor(peerPlaintext) };
  }

  seal(): void {
    const k = this.#sequence % BATCH;
    const blocks = blocksFor(this.#plaintext);
    if (k === 0 || this.#sealStreams === undefined) this.#sealStreams = this.#sealCcm.keystreams(this.#nonces(this.#senderId, this.#sequence), blocks);
    const sealNonce = nonce(this.#commonIv, this.#senderId, encodePartialIv(this.#sequence++));
    const stream = { bytes: this.#sealStreams, at: k * blocks * 16, length: blocks * 16 };
    this.#sealCcm.sealInto(this.#sealed, 0, sealNonce, AAD, this.#plaintext, stream);
  }

  open(): void {
    const { nonces, ciphertexts, blocks } = this.#incoming;
    const k = this.#opened++ % BATCH;
    if (k === 0 || this.#openStreams === undefined) this.#openStreams = this.#openCcm.keystreams(nonces, blocks);
    const sealed = ciphertexts[k]!;
    const stream = { bytes: this.#openStreams, at: k * blocks * 16, length: blocks * 16 };
    const n = sealed.length - TAG_LENGTH;
    if (this.#openCcm.open(nonces.subarray(k * NONCE_LENGTH, (k + 1) * NONCE_LENGTH), AAD, sealed.subarray(0, n), sealed.subarray(n), stream) === undefined) {
      throw new Error('aead-floor-batched: a prepared ciphertext did not authenticate');
    }
  }

  /** The nonces of BATCH consecutive Partial IVs from `first`, back to back (§5.2). */
  #nonces(id: Uint8Array, first: number): Buffer {
    const out = Buffer.allocUnsafe(BATCH * NONCE_LENGTH);
    for (let k = 0; k < BATCH; k++) out.set(nonce(this.#commonIv, id, encodePartialIv(first + k)), k * NONCE_LENGTH);
    return out;
  }
}

/** The CoAP messages a DTLS record carries in the benchmark: a GET /bench and its 2.05 with PAYLOAD. */
const GET_DATAGRAM_LENGTH = 4 + 8 + 6;
const RESPONSE_DATAGRAM_LENGTH = 4 + 8 + 1 + PAYLOAD.length;

/** One side's record protection per GET: `seal()` the datagram it sends, `open()` the one it receives. */
export class DtlsRecordFloor {
  readonly #write: RecordProtection;
  readonly #plaintext: Buffer;
  readonly #incoming: PeerRecords;
  #sequence = 1;

  constructor(side: Side) {
    // Client and server write keys and IVs differ (RFC 5246 §6.3); the peer's side is made here too.
    const clientWrite = { key: randomBytes(16), iv: randomBytes(4) };
    const serverWrite = { key: randomBytes(16), iv: randomBytes(4) };
    const [mine, theirs] = side === 'client' ? [clientWrite, serverWrite] : [serverWrite, clientWrite];
    this.#write = createRecordProtection('CCM_8', mine.key, mine.iv);
    this.#plaintext = Buffer.alloc(side === 'client' ? GET_DATAGRAM_LENGTH : RESPONSE_DATAGRAM_LENGTH, 0x42);
    this.#incoming = new PeerRecords(theirs.key, theirs.iv, side === 'client' ? RESPONSE_DATAGRAM_LENGTH : GET_DATAGRAM_LENGTH);
  }

  seal(): void {
    this.#write.encrypt(ContentType.ApplicationData, DTLS_1_2, 1, this.#sequence++, this.#plaintext, 13);
  }

  open(): void {
    this.#incoming.open();
  }
}

/**
 * A peer's consecutive application-data records (epoch 1, sequence numbers 0, 1, …), opened in
 * turn as a connection receives them, so the receiver's keystream batches (src/dtls/ccm8.ts) work
 * as in a real session. After the last of `count` records a fresh receiver starts again at 0.
 */
export class PeerRecords {
  readonly #records: Buffer[];
  readonly #key: Buffer;
  readonly #iv: Buffer;
  #receiver: RecordProtection;
  #next = 0;

  constructor(key: Buffer, iv: Buffer, plaintextLength: number, count = 4096) {
    const peer = createRecordProtection('CCM_8', key, iv);
    const plaintext = Buffer.alloc(plaintextLength, 0x24);
    this.#records = Array.from({ length: count }, (_, seq) => peer.encrypt(ContentType.ApplicationData, DTLS_1_2, 1, seq, plaintext));
    this.#key = key;
    this.#iv = iv;
    this.#receiver = createRecordProtection('CCM_8', key, iv);
  }

  /** Opens the next record; throws if it does not authenticate (the work must be real). */
  open(): Buffer {
    if (this.#next === this.#records.length) {
      this.#next = 0;
      this.#receiver = createRecordProtection('CCM_8', this.#key, this.#iv);
    }
    const seq = this.#next++;
    const plaintext = this.#receiver.decrypt(ContentType.ApplicationData, DTLS_1_2, 1, seq, this.#records[seq]!);
    if (plaintext === null) throw new Error('the prepared record did not authenticate');
    return plaintext;
  }
}

/** The floor work of a benchmark variant on one side, if the variant is a floor. */
export function floorOf(variant: Variant, side: Side): { seal(): void; open(): void } | undefined {
  if (variant === 'aead-floor') return new OscoreAeadFloor(side);
  if (variant === 'aead-floor-batched') return new OscoreBatchedAeadFloor(side);
  if (variant === 'record-floor') return new DtlsRecordFloor(side);
  return undefined;
}
