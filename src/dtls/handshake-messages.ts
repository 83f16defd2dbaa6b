/**
 * DTLS 1.2 handshake message bodies (RFC 5246 §7.4 with the DTLS changes of RFC 6347 §4.2/§4.3)
 * and the hello extensions this engine understands. Decoders throw DecodeError on malformed input;
 * the connection maps that to a fatal decode_error alert.
 */
import { DecodeError, Reader, u16, u24, u8, vec } from './bytes.js';

export const HandshakeType = {
  HelloRequest: 0,
  ClientHello: 1,
  ServerHello: 2,
  HelloVerifyRequest: 3,
  Certificate: 11,
  ServerKeyExchange: 12,
  CertificateRequest: 13,
  ServerHelloDone: 14,
  CertificateVerify: 15,
  ClientKeyExchange: 16,
  Finished: 20,
} as const;

export const ExtensionType = {
  ServerName: 0,
  SupportedGroups: 10,
  EcPointFormats: 11,
  SignatureAlgorithms: 13,
  ClientCertificateType: 19,
  ServerCertificateType: 20,
  EncryptThenMac: 22,
  ExtendedMasterSecret: 23,
  RenegotiationInfo: 0xff01,
} as const;

/** RFC 7250 certificate types; AuthzCert (3) is the MacCert of the trust-anchor draft (§3.1, §6). */
export const CertificateType = { X509: 0, RawPublicKey: 2, AuthzCert: 3 } as const;
export const NAMED_CURVE_SECP256R1 = 23;
export const EC_CURVE_TYPE_NAMED = 3;
export const EC_POINT_UNCOMPRESSED = 0;
/** SignatureAndHashAlgorithm {sha256(4), ecdsa(3)}. */
export const SIG_ECDSA_SECP256R1_SHA256 = 0x0403;
/** ClientCertificateType ecdsa_sign (RFC 4492 §5.5). */
export const CLIENT_CERT_TYPE_ECDSA_SIGN = 64;

export const HANDSHAKE_HEADER_LENGTH = 12;

export interface Extension {
  type: number;
  data: Buffer;
}

// ---------------------------------------------------------------------------------------------
// Handshake header (RFC 6347 §4.2.2)

export interface HandshakeFragment {
  msgType: number;
  length: number;
  messageSeq: number;
  fragmentOffset: number;
  fragmentLength: number;
  body: Buffer;
}

/** Parses all handshake fragments carried in one record's plaintext. */
export function decodeHandshakeFragments(data: Buffer): HandshakeFragment[] {
  const r = new Reader(data);
  const out: HandshakeFragment[] = [];
  while (r.remaining > 0) {
    const msgType = r.u8();
    const length = r.u24();
    const messageSeq = r.u16();
    const fragmentOffset = r.u24();
    const fragmentLength = r.u24();
    if (fragmentOffset + fragmentLength > length) throw new DecodeError('fragment exceeds message length');
    const body = r.bytes(fragmentLength);
    out.push({ msgType, length, messageSeq, fragmentOffset, fragmentLength, body });
  }
  return out;
}

export function encodeHandshakeFragment(f: HandshakeFragment): Buffer {
  return Buffer.concat([u8(f.msgType), u24(f.length), u16(f.messageSeq), u24(f.fragmentOffset), u24(f.fragmentLength), f.body]);
}

/** A whole message as a single fragment: the form hashed into the transcript (§4.2.6). */
export function encodeHandshakeMessage(msgType: number, messageSeq: number, body: Buffer): Buffer {
  return encodeHandshakeFragment({ msgType, length: body.length, messageSeq, fragmentOffset: 0, fragmentLength: body.length, body });
}

// ---------------------------------------------------------------------------------------------
// Extensions

function decodeExtensions(r: Reader): Extension[] {
  if (r.remaining === 0) return [];
  const block = new Reader(r.vec(2));
  const out: Extension[] = [];
  const seen = new Set<number>();
  while (block.remaining > 0) {
    const type = block.u16();
    const data = block.vec(2);
    // RFC 5246 §7.4.1.4: "There MUST NOT be more than one extension of the same type."
    if (seen.has(type)) throw new DecodeError(`duplicate extension ${type}`);
    seen.add(type);
    out.push({ type, data });
  }
  return out;
}

function encodeExtensions(exts: Extension[]): Buffer {
  if (exts.length === 0) return Buffer.alloc(0);
  return vec(2, Buffer.concat(exts.map((e) => Buffer.concat([u16(e.type), vec(2, e.data)]))));
}

export function findExtension(exts: Extension[], type: number): Extension | undefined {
  return exts.find((e) => e.type === type);
}

export function encodeUint16List(values: number[]): Buffer {
  return vec(2, Buffer.concat(values.map((v) => u16(v))));
}

export function decodeUint16List(data: Buffer): number[] {
  const r = new Reader(data);
  const list = new Reader(r.vec(2, 2));
  r.end();
  const out: number[] = [];
  if (list.remaining % 2 !== 0) throw new DecodeError('odd uint16 list');
  while (list.remaining > 0) out.push(list.u16());
  return out;
}

export function decodeUint8List(data: Buffer): number[] {
  const r = new Reader(data);
  const list = r.vec(1, 1);
  r.end();
  return [...list];
}

/** RFC 6066 §3 ServerNameList; returns host_name entries. */
export function encodeServerName(host: string): Buffer {
  const name = Buffer.from(host, 'utf8');
  return vec(2, Buffer.concat([u8(0), vec(2, name)]));
}

export function decodeServerName(data: Buffer): string[] {
  const r = new Reader(data);
  const list = new Reader(r.vec(2, 1));
  r.end();
  const names: string[] = [];
  while (list.remaining > 0) {
    const type = list.u8();
    const name = list.vec(2, 1);
    if (type === 0) names.push(name.toString('utf8'));
  }
  return names;
}

/** Client form of client/server_certificate_type: a list; server form: one byte (RFC 7250 §3). */
export function decodeCertTypeList(data: Buffer): number[] {
  return decodeUint8List(data);
}

export function decodeCertTypeSelected(data: Buffer): number {
  if (data.length !== 1) throw new DecodeError('certificate type selection must be one byte');
  return data[0]!;
}

// ---------------------------------------------------------------------------------------------
// Hello messages

export interface ClientHello {
  version: number;
  random: Buffer;
  sessionId: Buffer;
  cookie: Buffer;
  cipherSuites: number[];
  compressionMethods: number[];
  extensions: Extension[];
}

export function encodeClientHello(m: ClientHello): Buffer {
  return Buffer.concat([
    u16(m.version),
    m.random,
    vec(1, m.sessionId),
    vec(1, m.cookie),
    encodeUint16List(m.cipherSuites),
    vec(1, Buffer.from(m.compressionMethods)),
    encodeExtensions(m.extensions),
  ]);
}

export function decodeClientHello(body: Buffer): ClientHello {
  const r = new Reader(body);
  const version = r.u16();
  const random = r.bytes(32);
  const sessionId = r.vec(1, 0, 32);
  const cookie = r.vec(1, 0, 255);
  const suitesRaw = new Reader(r.vec(2, 2, 0xfffe));
  const cipherSuites: number[] = [];
  if (suitesRaw.remaining % 2 !== 0) throw new DecodeError('odd cipher suite list');
  while (suitesRaw.remaining > 0) cipherSuites.push(suitesRaw.u16());
  const compressionMethods = [...r.vec(1, 1)];
  const extensions = decodeExtensions(r);
  r.end();
  return { version, random, sessionId, cookie, cipherSuites, compressionMethods, extensions };
}

export interface HelloVerifyRequest {
  version: number;
  cookie: Buffer;
}

export function encodeHelloVerifyRequest(m: HelloVerifyRequest): Buffer {
  return Buffer.concat([u16(m.version), vec(1, m.cookie)]);
}

export function decodeHelloVerifyRequest(body: Buffer): HelloVerifyRequest {
  const r = new Reader(body);
  const version = r.u16();
  const cookie = r.vec(1, 0, 255);
  r.end();
  return { version, cookie };
}

export interface ServerHello {
  version: number;
  random: Buffer;
  sessionId: Buffer;
  cipherSuite: number;
  compressionMethod: number;
  extensions: Extension[];
}

export function encodeServerHello(m: ServerHello): Buffer {
  return Buffer.concat([
    u16(m.version),
    m.random,
    vec(1, m.sessionId),
    u16(m.cipherSuite),
    u8(m.compressionMethod),
    encodeExtensions(m.extensions),
  ]);
}

export function decodeServerHello(body: Buffer): ServerHello {
  const r = new Reader(body);
  const version = r.u16();
  const random = r.bytes(32);
  const sessionId = r.vec(1, 0, 32);
  const cipherSuite = r.u16();
  const compressionMethod = r.u8();
  const extensions = decodeExtensions(r);
  r.end();
  return { version, random, sessionId, cipherSuite, compressionMethod, extensions };
}

// ---------------------------------------------------------------------------------------------
// Certificate (RFC 7250 §3: RawPublicKey form carries one SubjectPublicKeyInfo)

export function encodeRpkCertificate(spki: Buffer): Buffer {
  return vec(3, spki);
}

/** Returns the SPKI, or null for an empty certificate (a client without a key, RFC 5246 §7.4.6). */
export function decodeRpkCertificate(body: Buffer): Buffer | null {
  const r = new Reader(body);
  const spki = r.vec(3);
  r.end();
  return spki.length === 0 ? null : spki;
}

export const EMPTY_CERTIFICATE = vec(3, Buffer.alloc(0));

/** X.509 form (RFC 5246 §7.4.2): a list of DER certificates, the sender's own first. */
export function encodeX509Certificate(chain: readonly Buffer[]): Buffer {
  return vec(3, Buffer.concat(chain.map((c) => vec(3, c))));
}

/** Returns the DER certificates (possibly none: a client without a certificate). */
export function decodeX509Certificate(body: Buffer): Buffer[] {
  const r = new Reader(body);
  const list = new Reader(r.vec(3));
  r.end();
  const certs: Buffer[] = [];
  while (list.remaining > 0) certs.push(list.vec(3, 1));
  return certs;
}

// ---------------------------------------------------------------------------------------------
// ServerKeyExchange

export interface EcdhParams {
  curve: number;
  point: Buffer;
  /** The encoded ServerECDHParams bytes (what the signature covers, RFC 4492 §5.4). */
  raw: Buffer;
}

export function encodeEcdhParams(point: Buffer): Buffer {
  return Buffer.concat([u8(EC_CURVE_TYPE_NAMED), u16(NAMED_CURVE_SECP256R1), vec(1, point)]);
}

function decodeEcdhParams(r: Reader, startBuf: Buffer, start: number): EcdhParams {
  const curveType = r.u8();
  if (curveType !== EC_CURVE_TYPE_NAMED) throw new DecodeError('only named curves are supported');
  const curve = r.u16();
  const point = r.vec(1, 1);
  const end = startBuf.length - r.remaining;
  return { curve, point, raw: startBuf.subarray(start, end) };
}

export interface DigitallySigned {
  algorithm: number;
  signature: Buffer;
}

export function encodeDigitallySigned(s: DigitallySigned): Buffer {
  return Buffer.concat([u16(s.algorithm), vec(2, s.signature)]);
}

function decodeDigitallySignedFrom(r: Reader): DigitallySigned {
  const algorithm = r.u16();
  const signature = r.vec(2);
  return { algorithm, signature };
}

export function decodeDigitallySigned(body: Buffer): DigitallySigned {
  const r = new Reader(body);
  const s = decodeDigitallySignedFrom(r);
  r.end();
  return s;
}

export function encodePskServerKeyExchange(hint: Buffer): Buffer {
  return vec(2, hint);
}

export function decodePskServerKeyExchange(body: Buffer): { hint: Buffer } {
  const r = new Reader(body);
  const hint = r.vec(2);
  r.end();
  return { hint };
}

export function decodeEcdheEcdsaServerKeyExchange(body: Buffer): { params: EcdhParams; signed: DigitallySigned } {
  const r = new Reader(body);
  const params = decodeEcdhParams(r, body, 0);
  const signed = decodeDigitallySignedFrom(r);
  r.end();
  return { params, signed };
}

/** RFC 5489 §2: psk_identity_hint<0..2^16-1> followed by ServerECDHParams, no signature. */
export function encodeEcdhePskServerKeyExchange(hint: Buffer, point: Buffer): Buffer {
  return Buffer.concat([vec(2, hint), encodeEcdhParams(point)]);
}

export function decodeEcdhePskServerKeyExchange(body: Buffer): { hint: Buffer; params: EcdhParams } {
  const r = new Reader(body);
  const hint = r.vec(2);
  const start = body.length - r.remaining;
  const params = decodeEcdhParams(r, body, start);
  r.end();
  return { hint, params };
}

// ---------------------------------------------------------------------------------------------
// CertificateRequest (RFC 5246 §7.4.4)

export interface CertificateRequest {
  certificateTypes: number[];
  signatureAlgorithms: number[];
  authorities: Buffer;
}

export function encodeCertificateRequest(m: CertificateRequest): Buffer {
  return Buffer.concat([vec(1, Buffer.from(m.certificateTypes)), encodeUint16List(m.signatureAlgorithms), vec(2, m.authorities)]);
}

export function decodeCertificateRequest(body: Buffer): CertificateRequest {
  const r = new Reader(body);
  const certificateTypes = [...r.vec(1, 1)];
  const algs = new Reader(r.vec(2, 2));
  const signatureAlgorithms: number[] = [];
  if (algs.remaining % 2 !== 0) throw new DecodeError('odd signature algorithm list');
  while (algs.remaining > 0) signatureAlgorithms.push(algs.u16());
  const authorities = r.vec(2);
  r.end();
  return { certificateTypes, signatureAlgorithms, authorities };
}

// ---------------------------------------------------------------------------------------------
// ClientKeyExchange

export function encodePskClientKeyExchange(identity: Uint8Array): Buffer {
  return vec(2, identity);
}

export function decodePskClientKeyExchange(body: Buffer): { identity: Buffer } {
  const r = new Reader(body);
  const identity = r.vec(2);
  r.end();
  return { identity };
}

export function encodeEcdhClientKeyExchange(point: Buffer): Buffer {
  return vec(1, point);
}

export function decodeEcdhClientKeyExchange(body: Buffer): { point: Buffer } {
  const r = new Reader(body);
  const point = r.vec(1, 1);
  r.end();
  return { point };
}

export function encodeEcdhePskClientKeyExchange(identity: Uint8Array, point: Buffer): Buffer {
  return Buffer.concat([vec(2, identity), vec(1, point)]);
}

export function decodeEcdhePskClientKeyExchange(body: Buffer): { identity: Buffer; point: Buffer } {
  const r = new Reader(body);
  const identity = r.vec(2);
  const point = r.vec(1, 1);
  r.end();
  return { identity, point };
}

// ---------------------------------------------------------------------------------------------
// Finished

export function decodeFinished(body: Buffer): Buffer {
  if (body.length !== 12) throw new DecodeError('verify_data must be 12 bytes');
  return body;
}
