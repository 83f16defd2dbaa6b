/**
 * DerivedKey and AuthorizedPublicKey handshakes driven in memory through the sans-IO engine: the
 * success paths and every refusal of draft §2.4 / §3.3 (replay, left of the window, revocation,
 * unknown TA, forged MAC, MacCert without the private key, bad SPKI), the window updated only on
 * success, and the race between two handshakes with the same sequence number.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AlertDescription, decodeRecords, DtlsClient, DtlsServerEngine, encodeRecord, spkiOf, type DtlsClientOptions } from '../src/dtls/index.js';
import { deriveKey, formatNonce } from '../src/trust-anchor/derive.js';
import { encodeMacCert, issueMacCert } from '../src/trust-anchor/maccert.js';
import { encodeRevocation } from '../src/trust-anchor/revocation.js';
import { TrustAnchorVerifier } from '../src/trust-anchor/resource-server.js';
import { alertsOf, FakeClock, hasEvent, p256, pump } from './dtls-helpers.js';

const K = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const rsKeys = p256();

function setup(opts: { window?: number } = {}) {
  const clock = new FakeClock();
  const reasons: string[] = [];
  const verifier = new TrustAnchorVerifier([{ id: 'ta1', key: K, ...(opts.window ? { window: opts.window } : {}) }], { onReject: (r) => reasons.push(r) });
  const server = new DtlsServerEngine({
    now: clock.now,
    pskStore: verifier.pskStore((id) => (id.toString() === 'plain' ? Buffer.from('plain-secret') : undefined)),
    authz: verifier.authz(rsKeys.privateKey),
  });
  return { clock, verifier, server, reasons };
}

let peerN = 0;
function handshake(server: DtlsServerEngine, clock: FakeClock, opts: Omit<DtlsClientOptions, 'now'>) {
  const client = new DtlsClient({ now: clock.now, ...opts });
  const r = pump(client, server, client.start(), { peer: `192.0.2.1:${40000 + peerN++}` });
  return { client, r, ok: hasEvent(r.clientEvents, 'connected') && hasEvent(r.serverEvents, 'connected'), serverAlerts: alertsOf(r.serverEvents, 'local') };
}

function dk(seq: number, opts: { ta?: string; key?: Buffer; client?: string; random?: string } = {}) {
  const identity = formatNonce({ taId: opts.ta ?? 'ta1', clientId: opts.client ?? 'alice', sequence: seq, ...(opts.random ? { random: opts.random } : {}) });
  return { psk: { identity: Buffer.from(identity), key: deriveKey(opts.key ?? K, identity) } };
}

describe('DerivedKey mode (engine)', () => {
  it('a derived key connects; the nonce is the peer identity; the window moves', () => {
    const { server, clock, verifier } = setup();
    const h = handshake(server, clock, dk(1, { random: '0123456789abcdef0123456789abcdef' }));
    assert.ok(h.ok);
    assert.equal(h.client.peerIdentity?.type, 'psk');
    assert.equal(verifier.windowOf('ta1')!.highest, 1);
    // ordinary PSK identities still work beside the trust anchors (§4)
    assert.ok(handshake(server, clock, { psk: { identity: Buffer.from('plain'), key: Buffer.from('plain-secret') } }).ok);
  });
  it('a replayed nonce is refused (unknown_psk_identity) before derivation', () => {
    const { server, clock, reasons } = setup();
    assert.ok(handshake(server, clock, dk(7)).ok);
    const again = handshake(server, clock, dk(7));
    assert.ok(!again.ok);
    assert.deepEqual(again.serverAlerts, [AlertDescription.UnknownPskIdentity]);
    assert.deepEqual(reasons, ['replayed']);
  });
  it('a sequence number left of the window is refused; inside the window, unused, accepted', () => {
    const { server, clock, reasons } = setup({ window: 32 });
    assert.ok(handshake(server, clock, dk(100)).ok);
    assert.ok(!handshake(server, clock, dk(68)).ok); // 100 - 68 = 32
    assert.deepEqual(reasons, ['left-of-window']);
    assert.ok(handshake(server, clock, dk(69)).ok);
    assert.ok(handshake(server, clock, dk(99)).ok);
  });
  it('a revoked sequence number is refused; revocations are authenticated with K_RS-TA', () => {
    const { server, clock, verifier, reasons } = setup();
    assert.equal(verifier.handleRevocation(encodeRevocation(Buffer.alloc(16, 9), 'ta1', 5)), 'bad-mac');
    assert.equal(verifier.handleRevocation(encodeRevocation(K, 'ta9', 5)), 'unknown-ta');
    assert.equal(verifier.handleRevocation(encodeRevocation(K, 'ta1', 5)), 'revoked');
    assert.equal(verifier.handleRevocation(encodeRevocation(K, 'ta1', 5)), 'already-used');
    assert.ok(!handshake(server, clock, dk(5)).ok);
    assert.deepEqual(reasons, ['replayed']);
    assert.ok(handshake(server, clock, dk(4)).ok);
  });
  it('an unknown TA id is refused', () => {
    const { server, clock, reasons } = setup();
    const h = handshake(server, clock, dk(1, { ta: 'ta2' }));
    assert.ok(!h.ok);
    assert.deepEqual(h.serverAlerts, [AlertDescription.UnknownPskIdentity]);
    assert.deepEqual(reasons, ['unknown-ta']);
  });
  it('a wrong key (nonce not from the TA) fails and does not consume the sequence number', () => {
    const { server, clock, verifier } = setup();
    const forged = dk(3, { key: Buffer.alloc(16, 1) });
    const h = handshake(server, clock, forged);
    assert.ok(!h.ok);
    assert.ok(h.serverAlerts.includes(AlertDescription.BadRecordMac) || h.serverAlerts.includes(AlertDescription.DecryptError));
    assert.equal(verifier.windowOf('ta1')!.check(3), 'fresh');
    assert.ok(handshake(server, clock, dk(3)).ok);
  });
  it('of two concurrent handshakes with the same nonce only the first to finish succeeds', () => {
    const { server, clock, reasons } = setup();
    const creds = dk(11);
    const a = new DtlsClient({ now: clock.now, ...creds });
    const b = new DtlsClient({ now: clock.now, ...creds });
    // Run both up to the client's last flight, then deliver them in turn.
    const held: Array<{ who: 'a' | 'b'; d: Buffer }> = [];
    const drive = (c: DtlsClient, peer: string, who: 'a' | 'b') => {
      let q = c.start();
      for (let i = 0; i < 10 && q.length; i++) {
        const next: Buffer[] = [];
        for (const d of q) {
          const o = server.receive(d, peer);
          for (const s of o.send) next.push(...c.receive(s).send);
        }
        // hold the flight that carries ClientKeyExchange+Finished (after the second ServerHello flight)
        if (c.state === 'handshaking' && next.length && i === 1) {
          held.push(...next.map((d) => ({ who, d })));
          return;
        }
        q = next;
      }
    };
    drive(a, '192.0.2.9:1', 'a');
    drive(b, '192.0.2.9:2', 'b');
    // Split the held flights into records: both ClientKeyExchanges are checked (window: fresh)
    // before either Finished arrives.
    const recs = (who: 'a' | 'b') => held.filter((h) => h.who === who).flatMap((h) => decodeRecords(h.d).map((r) => encodeRecord(r)));
    const ra = recs('a');
    const rb = recs('b');
    const order: Array<['a' | 'b', Buffer]> = [['a', ra[0]!], ['b', rb[0]!], ...ra.slice(1).map((d) => ['a', d] as ['a', Buffer]), ...rb.slice(1).map((d) => ['b', d] as ['b', Buffer])];
    let connected = 0;
    for (const [who, d] of order) {
      const o = server.receive(d, who === 'a' ? '192.0.2.9:1' : '192.0.2.9:2');
      if (hasEvent(o.events, 'connected')) connected++;
    }
    assert.equal(connected, 1);
    assert.deepEqual(reasons, ['raced']);
  });
  it('exposes the handshake to in-memory drivers (benchmarks): 50 sequential DK handshakes', () => {
    const { server, clock, verifier } = setup();
    for (let s = 1; s <= 50; s++) assert.ok(handshake(server, clock, dk(s)).ok);
    assert.equal(verifier.windowOf('ta1')!.highest, 50);
  });
});

describe('AuthorizedPublicKey mode (engine)', () => {
  const client = p256();
  const cert = (seq: number, opts: { key?: Buffer; ta?: string; spki?: Buffer } = {}) =>
    encodeMacCert(issueMacCert(opts.key ?? K, opts.spki ?? spkiOf(client.publicKey), opts.ta ?? 'ta1', seq));
  const authz = (certificate: Buffer, privateKey = client.privateKey) => ({ authz: { certificate, privateKey, serverPublicKey: rsKeys.publicKey } });

  it('a MacCert connects with client_certificate_type AuthzCert and an empty server certificate_list', () => {
    const { server, clock, verifier } = setup();
    const h = handshake(server, clock, authz(cert(1)));
    assert.ok(h.ok);
    const conn = [...(server as unknown as { connections: Map<string, { peerIdentity: unknown }> }).connections.values()][0]!;
    const id = conn.peerIdentity as { type: string; spki: Buffer; trustAnchor: { id: string; sequence: number } };
    assert.equal(id.type, 'rpk');
    assert.deepEqual(id.trustAnchor, { id: 'ta1', sequence: 1 });
    assert.ok(id.spki.equals(spkiOf(client.publicKey)));
    assert.equal(verifier.windowOf('ta1')!.highest, 1);
  });
  it('the server authenticates with the key the TA gave the client (wrong key → decrypt_error at the client)', () => {
    const { server, clock } = setup();
    const h = handshake(server, clock, { authz: { certificate: cert(2), privateKey: client.privateKey, serverPublicKey: p256().publicKey } });
    assert.ok(!h.ok);
    assert.deepEqual(alertsOf(h.r.clientEvents, 'local'), [AlertDescription.DecryptError]);
  });
  const refusals: Array<[string, (s: ReturnType<typeof setup>) => Buffer, string, Parameters<typeof authz>[1]?]> = [
    ['a replayed certificate', (s) => (assert.ok(handshake(s.server, s.clock, authz(cert(4))).ok), cert(4)), 'replayed'],
    ['a sequence number left of the window', (s) => (assert.ok(handshake(s.server, s.clock, authz(cert(200))).ok), cert(136)), 'left-of-window'],
    ['a revoked sequence number', (s) => (s.verifier.revoke('ta1', 6), cert(6)), 'replayed'],
    ['an unknown TA id', () => cert(1, { ta: 'nope' }), 'unknown-ta'],
    ['a forged MAC', () => cert(1, { key: Buffer.alloc(16, 3) }), 'bad-mac'],
    ['a non-P-256 SPKI', () => cert(1, { spki: Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]) }), 'bad-spki'],
    ['a malformed MacCert', () => cert(1).subarray(0, 20), 'malformed'],
  ];
  for (const [name, make, reason] of refusals) {
    it(`${name} → bad_certificate`, () => {
      const s = setup();
      const h = handshake(s.server, s.clock, authz(make(s)));
      assert.ok(!h.ok);
      assert.deepEqual(h.serverAlerts, [AlertDescription.BadCertificate]);
      assert.equal(s.reasons.at(-1), reason);
    });
  }
  it('a client holding the MacCert but not the private key → bad_certificate; the number stays unused', () => {
    const s = setup();
    const h = handshake(s.server, s.clock, authz(cert(8), p256().privateKey));
    assert.ok(!h.ok);
    assert.deepEqual(h.serverAlerts, [AlertDescription.BadCertificate]);
    assert.equal(s.verifier.windowOf('ta1')!.check(8), 'fresh');
    assert.ok(handshake(s.server, s.clock, authz(cert(8))).ok);
  });
  it('DK and APK share one sequence space per trust anchor', () => {
    const s = setup();
    assert.ok(handshake(s.server, s.clock, dk(12)).ok);
    assert.ok(!handshake(s.server, s.clock, authz(cert(12))).ok);
  });
});
