/**
 * Property-based fuzzing of the DTLS record and handshake parsers and of both engine roles with
 * fast-check: arbitrary bytes and mutated valid messages never make a parser throw anything but
 * DecodeError, never make an engine throw, and never create server state without a cookie.
 * About 120k cases in all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DecodeError } from '../src/dtls/bytes.js';
import * as hs from '../src/dtls/handshake-messages.js';
import { DtlsClient, DtlsServerEngine } from '../src/dtls/index.js';
import { ContentType, decodeRecords, DTLS_1_2, encodeRecord } from '../src/dtls/record.js';
import { FakeClock } from './dtls-helpers.js';

const RUNS = 8_000;

/** A parser may return or throw DecodeError; anything else is a bug. */
function parserProperty(name: string, parse: (b: Buffer) => unknown, seeds: Buffer[], runs = RUNS): void {
  const mutated = fc.tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat()).map(([seed, edits, cut]) => {
    const b = Buffer.from(seed);
    for (const [i, v] of edits) if (b.length) b[i % b.length] = v;
    return cut % 4 === 0 ? b.subarray(0, cut % (b.length + 1)) : b;
  });
  const bytes = fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u));
  fc.assert(
    fc.property(fc.oneof(bytes, mutated), (b) => {
      try {
        parse(b);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw new Error(`${name} threw ${(e as Error).name}: ${(e as Error).message}`);
      }
    }),
    { numRuns: runs },
  );
}

const clientHello = hs.encodeClientHello({
  version: DTLS_1_2,
  random: Buffer.alloc(32, 7),
  sessionId: Buffer.alloc(0),
  cookie: Buffer.alloc(16, 1),
  cipherSuites: [0xc0a8, 0xc0ae, 0x00a8],
  compressionMethods: [0],
  extensions: [
    { type: hs.ExtensionType.SupportedGroups, data: hs.encodeUint16List([23]) },
    { type: hs.ExtensionType.ExtendedMasterSecret, data: Buffer.alloc(0) },
    { type: hs.ExtensionType.ServerName, data: hs.encodeServerName('example.com') },
  ],
});
const serverHello = hs.encodeServerHello({ version: DTLS_1_2, random: Buffer.alloc(32, 3), sessionId: Buffer.alloc(0), cipherSuite: 0xc0a8, compressionMethod: 0, extensions: [{ type: 23, data: Buffer.alloc(0) }] });
const x509 = hs.encodeX509Certificate([Buffer.alloc(40, 0x30), Buffer.alloc(20, 0x31)]);
const handshakeRecord = (body: Buffer, type: number): Buffer => hs.encodeHandshakeMessage(type, 0, body);

test('fuzz: record layer decodeRecords', () => {
  const rec = encodeRecord({ type: ContentType.Handshake, version: DTLS_1_2, epoch: 0, seq: 5, fragment: handshakeRecord(clientHello, hs.HandshakeType.ClientHello) });
  parserProperty('decodeRecords', (b) => decodeRecords(b), [rec, Buffer.concat([rec, rec])], 15_000);
});

test('fuzz: handshake fragments and hello messages', () => {
  parserProperty('decodeHandshakeFragments', hs.decodeHandshakeFragments, [handshakeRecord(clientHello, 1), handshakeRecord(serverHello, 2)], 10_000);
  parserProperty('decodeClientHello', hs.decodeClientHello, [clientHello], 10_000);
  parserProperty('decodeServerHello', hs.decodeServerHello, [serverHello]);
  parserProperty('decodeHelloVerifyRequest', hs.decodeHelloVerifyRequest, [hs.encodeHelloVerifyRequest({ version: 0xfeff, cookie: Buffer.alloc(32, 9) })]);
});

test('fuzz: certificate, key exchange and finished messages', () => {
  parserProperty('decodeX509Certificate', hs.decodeX509Certificate, [x509]);
  parserProperty('decodeRpkCertificate', hs.decodeRpkCertificate, [hs.encodeRpkCertificate(Buffer.alloc(91, 0x30))], 5_000);
  parserProperty('decodeCertificateRequest', hs.decodeCertificateRequest, [hs.encodeCertificateRequest({ certificateTypes: [64], signatureAlgorithms: [0x0403], authorities: Buffer.alloc(0) })], 5_000);
  parserProperty('decodeEcdheEcdsaServerKeyExchange', hs.decodeEcdheEcdsaServerKeyExchange, [
    Buffer.concat([hs.encodeEcdhParams(Buffer.alloc(65, 4)), hs.encodeDigitallySigned({ algorithm: 0x0403, signature: Buffer.alloc(70, 1) })]),
  ], 5_000);
  parserProperty('decodeEcdhePskServerKeyExchange', hs.decodeEcdhePskServerKeyExchange, [hs.encodeEcdhePskServerKeyExchange(Buffer.from('hint'), Buffer.alloc(65, 4))], 5_000);
  parserProperty('decodePskClientKeyExchange', hs.decodePskClientKeyExchange, [hs.encodePskClientKeyExchange(Buffer.from('id'))], 5_000);
  parserProperty('decodeEcdhePskClientKeyExchange', hs.decodeEcdhePskClientKeyExchange, [hs.encodeEcdhePskClientKeyExchange(Buffer.from('id'), Buffer.alloc(65, 4))], 5_000);
  parserProperty('decodeServerName', hs.decodeServerName, [hs.encodeServerName('coap.example')], 5_000);
  parserProperty('decodeFinished', hs.decodeFinished, [Buffer.alloc(12, 1)], 2_000);
});

test('fuzz: the server engine never throws and keeps no state without a cookie', () => {
  const clock = new FakeClock();
  const engine = new DtlsServerEngine({ now: clock.now, pskStore: () => Buffer.from('k') });
  const hello = encodeRecord({ type: ContentType.Handshake, version: DTLS_1_2, epoch: 0, seq: 1, fragment: handshakeRecord(clientHello, hs.HandshakeType.ClientHello) });
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)),
        fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
          const b = Buffer.from(hello);
          b[i % b.length] = v;
          return b;
        }),
      ),
      (d) => {
        const out = engine.receive(d, '192.0.2.9:1000');
        assert.ok(Array.isArray(out.send));
        assert.equal(engine.connectionCount, 0);
      },
    ),
    { numRuns: 15_000 },
  );
});

test('fuzz: a handshaking client never throws on arbitrary datagrams', () => {
  const clock = new FakeClock();
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ minLength: 13, maxLength: 120 }), { maxLength: 4 }), fc.boolean(), (datagrams, handshakeHeader) => {
      const client = new DtlsClient({ now: clock.now, psk: { identity: Buffer.from('id'), key: Buffer.from('k') } });
      client.start();
      for (const u of datagrams) {
        const d = Buffer.from(u);
        if (handshakeHeader) {
          // A plausible epoch-0 DTLS 1.2 handshake record header, so the handshake parsers are reached.
          d[0] = ContentType.Handshake;
          d.writeUInt16BE(DTLS_1_2, 1);
          d.writeUInt16BE(0, 3);
          d.writeUInt16BE(d.length - 13, 11);
        }
        client.receive(d);
      }
      assert.ok(['handshaking', 'failed'].includes(client.state));
    }),
    { numRuns: 10_000 },
  );
});
