/**
 * The "edhoc" section of credentials.json: identities (CCS or X.509), suites and methods, trusted
 * peers by CCS, pinned certificate or issuer, and the resources each may use — loaded into the
 * EDHOC core's objects and run through a handshake; every bad value refused with the entry and
 * field named, and no key material in any message.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { coseKeyFromKeyObject, encodeCcs, toHex, generatePrivateKey, CoseCurve } from '../src/cose/index.js';
import { CredentialsError, edhocInitiatorConfig, edhocResponderConfig, parseCredentials, type EdhocCredentials } from '../src/credentials/index.js';
import { CredentialStore, EdhocError, EdhocInitiator, EdhocResponder, type EdhocSession } from '../src/edhoc/index.js';
import { generateEdhocIdentity } from '../src/credentials/edhoc-keygen.js';
import { X509_FIXTURES as F } from './edhoc-x509-fixtures.js';
import { ROOT } from './support/cli-harness.js';
import { CoapServer } from '../src/server/server.js';
import { FakeNetwork } from './support/network.js';
import { attachEdhocResponder as attachServeResponder } from '../src/cli/edhoc-serve.js';
import { deviceConnectionId, devicePeer, premadeSession } from '../bench/edhoc-contexts.js';

let dir: string;
const secrets: string[] = [];

function writeKey(name: string, key: KeyObject, mode = 0o600): void {
  const pem = key.export({ format: 'pem', type: 'pkcs8' }) as string;
  secrets.push(pem.split('\n')[1]!);
  if (key.asymmetricKeyType !== 'rsa') secrets.push(toHex(coseKeyFromKeyObject(key, { includePrivate: true }).d!));
  writeFileSync(join(dir, name), pem, { mode });
  chmodSync(join(dir, name), mode);
}

function writeCcs(name: string, key: KeyObject, sub: string, kid?: number): Uint8Array {
  const ccs = encodeCcs({ sub, coseKey: coseKeyFromKeyObject(key, kid === undefined ? {} : { kid: Uint8Array.of(kid) }) });
  writeFileSync(join(dir, name), ccs);
  return ccs;
}

const load = (json: unknown): EdhocCredentials => {
  const credentials = parseCredentials(JSON.stringify(json), join(dir, 'credentials.json'));
  assert.ok(credentials.edhoc, 'an edhoc section');
  return credentials.edhoc;
};

function handshake(client: EdhocCredentials, server: EdhocCredentials, uri: string): { client: EdhocSession; server: EdhocSession } {
  const { state, message } = new EdhocInitiator(edhocInitiatorConfig(client, uri)).prepareMessage1({ connectionId: Uint8Array.of(1) });
  const { state: waitM3, message: m2 } = new EdhocResponder(edhocResponderConfig(server)).processMessage1(message).prepareMessage2({ connectionId: Uint8Array.of(2) });
  const { state: sent, message: m3 } = state.processMessage2(m2).prepareMessage3();
  return { server: waitM3.processMessage3(m3).complete(), client: sent.complete() };
}

const clientJson = (identity: object = {}, extra: object = {}) => ({
  edhoc: {
    identity: { privateKey: 'client.key', ccs: 'client.ccs', ...identity },
    peers: [{ name: 'server', ccs: 'server.ccs', resources: ['coap://127.0.0.1/sensors/*'] }],
    ...extra,
  },
});
const serverJson = (peers?: object[]) => ({
  edhoc: {
    identity: { privateKey: 'server.key', ccs: 'server.ccs' },
    peers: peers ?? [{ name: 'alice', ccs: 'client.ccs', resources: ['/sensors/*'] }],
  },
});

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'coapsec-edhoc-credentials-'));
  const client = generatePrivateKey(CoseCurve.X25519);
  const server = generatePrivateKey(CoseCurve.X25519);
  writeKey('client.key', client);
  writeKey('server.key', server);
  writeCcs('client.ccs', client, 'alice', 0x2b);
  writeCcs('server.ccs', server, 'server', 0x32);
  const signer = generatePrivateKey(CoseCurve.Ed25519);
  writeKey('signer.key', signer);
  writeCcs('signer.ccs', signer, 'signer');
  writeKey('open.key', signer, 0o644);
  const other = generatePrivateKey(CoseCurve.X25519);
  writeCcs('other.ccs', other, 'other', 0x2b);
  // PEM straight from the generator, then a KeyObject of its own: see generatePrivateKey for why.
  const rsa = createPrivateKey(generateKeyPairSync('rsa', { modulusLength: 1024, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } }).privateKey);
  writeKey('rsa.key', rsa);
  for (const name of ['root', 'intermediate', 'initiator', 'responder', 'notca'] as const) {
    writeFileSync(join(dir, `${name}.pem`), F[name].cert);
    writeFileSync(join(dir, `${name}.key`), F[name].key, { mode: 0o600 });
    secrets.push(F[name].key.split('\n')[1]!);
  }
  writeFileSync(join(dir, 'garbage.bin'), 'not a key or certificate');
  // The same x with the other y: (x, p − y) is another P-256 public key.
  const ec = generatePrivateKey(CoseCurve.P256);
  writeKey('ec.key', ec);
  const point = coseKeyFromKeyObject(ec);
  const p256 = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
  const mirroredY = Buffer.from((p256 - BigInt(`0x${toHex(point.y as Uint8Array)}`)).toString(16).padStart(64, '0'), 'hex');
  writeFileSync(join(dir, 'ec-mirror.ccs'), encodeCcs({ sub: 'mirror', coseKey: { ...point, y: new Uint8Array(mirroredY) } }));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('EDHOC entries in credentials.json', () => {
  it('CCS identities referenced by kid, peers by CCS: a method 3 handshake, and each side knows the peer by its entry name', () => {
    const client = load(clientJson());
    const server = load(serverJson());
    assert.deepEqual([...client.methods], [3]);
    assert.deepEqual([...client.suites], [0, 1, 4, 6]);
    const sessions = handshake(client, server, 'coap://127.0.0.1/sensors/temp');
    assert.equal(sessions.server.peer.grant?.name, 'alice');
    assert.equal(sessions.client.peer.grant?.name, 'server');
    assert.equal(toHex(sessions.client.oscore().masterSecret), toHex(sessions.server.oscore().masterSecret));
  });

  it('maxContexts and activeContexts reach the EDHOC server serve attaches (the oldest context dropped past the bound)', () => {
    const server = load({ edhoc: { ...serverJson().edhoc, maxContexts: 2, activeContexts: 1 } });
    assert.equal(server.maxContexts, 2);
    assert.equal(server.activeContexts, 1);
    assert.equal(load(serverJson()).maxContexts, undefined);
    const coap = new CoapServer(new FakeNetwork().endpoint({ address: '127.0.0.1', port: 5683 }));
    const { edhoc } = attachServeResponder(coap, server);
    const peer = devicePeer('device');
    for (let i = 0; i < 3; i++) edhoc.installSession(premadeSession(peer, deviceConnectionId(i)));
    assert.equal(edhoc.contextCount, 2);
    assert.ok(!edhoc.hasKid(deviceConnectionId(0)), 'the first context was dropped');
    assert.ok(edhoc.hasKid(deviceConnectionId(2)));
  });

  it('resources: the server asks per request; the client refuses a server not granted the request URI (error 1)', () => {
    const client = load(clientJson());
    const server = load(serverJson());
    const { server: session } = handshake(client, server, 'coap://127.0.0.1/sensors/temp');
    assert.equal(CredentialStore.allows(session.peer, 'coap://10.0.0.1/sensors/temp'), true);
    assert.equal(CredentialStore.allows(session.peer, 'coap://10.0.0.1/admin'), false);
    assert.throws(() => handshake(client, server, 'coap://127.0.0.1/admin'), (e) => e instanceof EdhocError && e.code === 1 && /not authorized for this resource/.test(e.message));
  });

  it('inline CCS ({"hex"}), kccs by value, suite and method preference', () => {
    const client = load(clientJson({ privateKey: 'signer.key', ccs: 'signer.ccs', idCred: 'kccs' }, { suites: [4, 0], methods: [1, 0] }));
    assert.deepEqual([...client.suites], [4, 0]);
    assert.equal(edhocInitiatorConfig(client, 'coap://h/').method, 1);
    assert.deepEqual(edhocResponderConfig(client).methods, [0], 'a signature key cannot be the static-DH Responder of method 1');
    assert.equal(client.own.idCred.map.has(14), true);
    const inline = load({ edhoc: { identity: { privateKey: 'client.key', ccs: 'client.ccs' }, peers: [{ name: 'signer', ccs: { hex: readHex('signer.ccs') }, resources: ['/*'] }] } });
    assert.equal(inline.peerEntries[0]!.trustedBy, 'ccs');
  });

  it('X.509: identity certificate sent by x5chain with its intermediate; a peer trusted by issuer, another by pinned certificate (x5t)', () => {
    const initiator = load({
      edhoc: {
        identity: { privateKey: 'initiator.key', certificate: 'initiator.pem', chain: ['intermediate.pem'], idCred: 'x5chain' },
        methods: [0],
        suites: [2],
        peers: [{ name: 'responder', certificate: 'responder.pem', resources: ['coap://127.0.0.1/*'] }],
      },
    });
    const responder = load({
      edhoc: {
        identity: { privateKey: 'responder.key', certificate: 'responder.pem' },
        methods: [0],
        peers: [{ name: 'devices of the test root', issuer: 'root.pem', resources: ['/*'] }],
      },
    });
    const sessions = handshake(initiator, responder, 'coap://127.0.0.1/x');
    assert.equal(sessions.server.peer.grant?.name, 'devices of the test root');
    assert.equal(sessions.server.peer.subject, 'CN=edhoc initiator');
    assert.equal(sessions.client.peer.grant?.name, 'responder');
  });

  it('a key file others can read loads with a warning', () => {
    const credentials = parseCredentials(JSON.stringify(clientJson({ privateKey: 'open.key', ccs: 'signer.ccs' })), join(dir, 'credentials.json'));
    assert.match(credentials.warnings.join('\n'), /edhoc\.identity\.privateKey: the key file can be read by others \(mode 644\)/);
  });
});

const readHex = (name: string): string => toHex(new Uint8Array(readFileSync(join(dir, name))));

describe('EDHOC entries: every bad value names the entry and the field, and no key', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['unknown field in the section', () => ({ edhoc: { ...clientJson().edhoc, peer: [] } }), /edhoc\.peer: unknown field/],
    ['identity missing', () => ({ edhoc: { peers: [] } }), /edhoc\.identity: is missing/],
    ['unknown identity field', () => clientJson({ secret: 'x' }), /edhoc\.identity\.secret: unknown field/],
    ['private key missing', () => ({ edhoc: { identity: { ccs: 'client.ccs' } } }), /edhoc\.identity\.privateKey: is missing/],
    ['private key file unreadable', () => clientJson({ privateKey: 'nope.key' }), /edhoc\.identity\.privateKey: cannot read nope\.key \(ENOENT\)/],
    ['private key file not a key', () => clientJson({ privateKey: 'garbage.bin' }), /edhoc\.identity\.privateKey: not a private key/],
    ['private key of a type EDHOC has no use for', () => clientJson({ privateKey: 'rsa.key' }), /edhoc\.identity\.privateKey: a rsa key; EDHOC needs/],
    ['both ccs and certificate', () => clientJson({ certificate: 'initiator.pem' }), /edhoc\.identity: give exactly one of "ccs" and "certificate"/],
    ['ccs not a claims set', () => clientJson({ ccs: 'garbage.bin' }), /edhoc\.identity\.ccs: not a CWT Claims Set/],
    ['inline ccs not hex', () => clientJson({ ccs: { hex: 'zz' } }), /edhoc\.identity\.ccs\.hex: /],
    ['ccs of another key', () => clientJson({ ccs: 'server.ccs' }), /edhoc\.identity\.ccs: does not hold the public key of edhoc\.identity\.privateKey/],
    ['ccs with the same x but the other y', () => clientJson({ privateKey: 'ec.key', ccs: 'ec-mirror.ccs' }), /edhoc\.identity\.ccs: does not hold the public key/],
    ['certificate of another key', () => ({ edhoc: { identity: { privateKey: 'initiator.key', certificate: 'responder.pem' } } }), /edhoc\.identity\.certificate: does not hold the public key/],
    ['certificate not a certificate', () => ({ edhoc: { identity: { privateKey: 'initiator.key', certificate: 'garbage.bin' } } }), /edhoc\.identity\.certificate: not an X\.509 certificate/],
    ['chain with a CCS', () => clientJson({ chain: ['root.pem'] }), /edhoc\.identity\.chain: only with "certificate"/],
    ['idCred unknown', () => clientJson({ idCred: 'x5u' }), /edhoc\.identity\.idCred: expected one of kid, kccs, x5t, x5chain/],
    ['idCred of a certificate for a CCS', () => clientJson({ idCred: 'x5t' }), /edhoc\.identity\.idCred: "x5t" names a certificate/],
    ['idCred of a CCS for a certificate', () => ({ edhoc: { identity: { privateKey: 'initiator.key', certificate: 'initiator.pem', idCred: 'kid' } } }), /edhoc\.identity\.idCred: "kid" names a CCS/],
    ['kid with a certificate', () => ({ edhoc: { identity: { privateKey: 'initiator.key', certificate: 'initiator.pem', kid: '01' } } }), /edhoc\.identity\.kid: only with "ccs"/],
    ['idCred kid without any kid', () => clientJson({ privateKey: 'signer.key', ccs: 'signer.ccs', idCred: 'kid' }), /edhoc\.identity\.kid: is missing/],
    ['suites not an array', () => clientJson({}, { suites: 2 }), /edhoc\.suites: expected an array/],
    ['suite unsupported', () => clientJson({}, { suites: [0, 25] }), /edhoc\.suites\[1\]: cipher suite 25 is not supported/],
    ['suite twice', () => clientJson({}, { suites: [0, 0] }), /edhoc\.suites\[1\]: suite 0 is listed twice/],
    ['suite that does not fit the key', () => clientJson({}, { suites: [2] }), /edhoc\.suites\[0\]: suite 2 does not fit the X25519 key/],
    ['suites empty', () => clientJson({}, { suites: [] }), /edhoc\.suites: must list at least one cipher suite/],
    ['method out of range', () => clientJson({}, { methods: [4] }), /edhoc\.methods\[0\]: method 4 does not exist/],
    ['method twice', () => clientJson({}, { methods: [3, 3] }), /edhoc\.methods\[1\]: method 3 is listed twice/],
    ['method the key cannot do', () => clientJson({}, { methods: [3, 0] }), /edhoc\.methods\[1\]: method 0 cannot use the X25519 key/],
    ['methods empty', () => clientJson({}, { methods: [] }), /edhoc\.methods: must list at least one method/],
    ['maxContexts zero', () => clientJson({}, { maxContexts: 0 }), /edhoc\.maxContexts: expected 1 to 10000000, not 0/],
    ['maxContexts not an integer', () => clientJson({}, { maxContexts: 1.5 }), /edhoc\.maxContexts: expected an integer/],
    ['activeContexts a string', () => clientJson({}, { activeContexts: '64' }), /edhoc\.activeContexts: expected an integer/],
    ['activeContexts too many', () => clientJson({}, { activeContexts: 1e9 }), /edhoc\.activeContexts: expected 1 to 10000000, not 1000000000/],
    ['peer without a name', () => serverJson([{ ccs: 'client.ccs', resources: ['/*'] }]), /edhoc\.peers\[0\]\.name: is missing/],
    ['peer with two trust forms', () => serverJson([{ name: 'a', ccs: 'client.ccs', issuer: 'root.pem', resources: ['/*'] }]), /edhoc\.peers\[0\]: give exactly one of "ccs"/],
    ['peer with none', () => serverJson([{ name: 'a', resources: ['/*'] }]), /edhoc\.peers\[0\]: give exactly one of "ccs"/],
    ['peer unknown field', () => serverJson([{ name: 'a', ccs: 'client.ccs', resources: ['/*'], allow: true }]), /edhoc\.peers\[0\]\.allow: unknown field/],
    ['peer without resources', () => serverJson([{ name: 'a', ccs: 'client.ccs' }]), /edhoc\.peers\[0\]\.resources: is missing/],
    ['peer with no resource', () => serverJson([{ name: 'a', ccs: 'client.ccs', resources: [] }]), /edhoc\.peers\[0\]\.resources: must list at least one pattern/],
    ['resource pattern malformed', () => serverJson([{ name: 'a', ccs: 'client.ccs', resources: ['/a/*/b'] }]), /edhoc\.peers\[0\]\.resources\[0\]: "\*" is only allowed as the last character/],
    ['resource pattern relative', () => serverJson([{ name: 'a', ccs: 'client.ccs', resources: ['sensors/*'] }]), /edhoc\.peers\[0\]\.resources\[0\]: expected an absolute URI/],
    ['two peers of one name', () => serverJson([{ name: 'a', ccs: 'client.ccs', resources: ['/*'] }, { name: 'a', issuer: 'root.pem', resources: ['/*'] }]), /edhoc\.peers\[1\]\.name: the same name as edhoc\.peers\[0\]/],
    ['two peers of one kid', () => serverJson([{ name: 'a', ccs: 'client.ccs', resources: ['/*'] }, { name: 'b', ccs: 'other.ccs', resources: ['/*'] }]), /edhoc\.peers\[1\]\.ccs: kid 2b already names another credential/],
    ['kid on a certificate peer', () => serverJson([{ name: 'a', certificate: 'responder.pem', kid: '01', resources: ['/*'] }]), /edhoc\.peers\[0\]\.kid: only with "ccs"/],
    ['issuer that is no CA', () => serverJson([{ name: 'a', issuer: 'notca.pem', resources: ['/*'] }]), /edhoc\.peers\[0\]\.issuer: is not a CA certificate/],
    ['pinned certificate unreadable', () => serverJson([{ name: 'a', certificate: 'missing.pem', resources: ['/*'] }]), /edhoc\.peers\[0\]\.certificate: cannot read missing\.pem/],
    ['peer ccs not a claims set', () => serverJson([{ name: 'a', ccs: 'garbage.bin', resources: ['/*'] }]), /edhoc\.peers\[0\]\.ccs: not a CWT Claims Set/],
  ];
  for (const [name, json, expected] of cases) {
    it(name, () => {
      let error: unknown;
      try {
        parseCredentials(JSON.stringify(json()), join(dir, 'credentials.json'));
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof CredentialsError, `expected a CredentialsError, got ${String(error)}`);
      assert.match(error.message, expected);
      assert.ok(error.message.startsWith(`${join(dir, 'credentials.json')}: edhoc`), error.message);
      for (const secret of secrets) assert.ok(!error.message.includes(secret), 'no key material in the message');
    });
  }
});

describe('docs/credentials.md', () => {
  it('its edhoc-client.json and edhoc-server.json, with keys made as `coapsec keygen` makes them, run EDHOC', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'credentials.md'), 'utf8');
    const block = (name: string): string => {
      const m = new RegExp('`' + name.replace('.', '\\.') + '`:\\n\\n```json\\n([\\s\\S]*?)\\n```').exec(doc);
      assert.ok(m, `docs/credentials.md shows ${name}`);
      return m[1]!;
    };
    const docDir = mkdtempSync(join(tmpdir(), 'coapsec-edhoc-doc-'));
    try {
      for (const name of ['sensor', 'gateway']) {
        const identity = generateEdhocIdentity('x25519', name, randomBytes(2));
        writeFileSync(join(docDir, `${name}.key`), identity.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
        writeFileSync(join(docDir, `${name}.ccs`), identity.ccs);
      }
      writeFileSync(join(docDir, 'operators-ca.pem'), F.root.cert);
      const client = parseCredentials(block('edhoc-client.json'), join(docDir, 'edhoc-client.json'));
      const server = parseCredentials(block('edhoc-server.json'), join(docDir, 'edhoc-server.json'));
      assert.deepEqual([...client.warnings, ...server.warnings], []);
      const sessions = handshake(client.edhoc!, server.edhoc!, 'coap://127.0.0.1/sensors/temp');
      assert.equal(sessions.server.peer.grant?.name, 'sensor');
      assert.equal(CredentialStore.allows(sessions.server.peer, 'coap://127.0.0.1/sensors/temp'), true);
      assert.equal(CredentialStore.allows(sessions.server.peer, 'coap://127.0.0.1/config'), false);
    } finally {
      rmSync(docDir, { recursive: true, force: true });
    }
  });
});
