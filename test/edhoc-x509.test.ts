/**
 * X.509 credentials through an intermediate CA (RFC 9360 x5chain and x5t, RFC 9528 App. D.3):
 * the chain is checked against a configured root certificate, and each broken link is refused.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { bytesView } from '../src/cose/index.js';
import { CredentialStore, EdhocError, EdhocInitiator, EdhocResponder, x509Credential, type CredentialStoreOptions } from '../src/edhoc/index.js';
import { X509_FIXTURES as F } from './edhoc-x509-fixtures.js';

const der = (pem: string): Uint8Array => bytesView(new X509Certificate(pem).raw);
const key = (pem: string) => createPrivateKey(pem);
const root = new X509Certificate(F.root.cert);
const C_I = Uint8Array.of(1);
const C_R = Uint8Array.of(2);

function run(responderChain: Uint8Array[], reference: 'x5t' | 'x5chain', initiatorStore: CredentialStore) {
  const initiator = new EdhocInitiator({
    method: 0,
    suites: [2],
    credential: x509Credential([der(F.initiator.cert), der(F.intermediate.cert)], key(F.initiator.key), 'x5chain'),
    peers: initiatorStore,
  });
  const responder = new EdhocResponder({
    suites: [2],
    credentials: [x509Credential(responderChain, key(F.responder.key), reference)],
    peers: new CredentialStore({ trustAnchors: [root] }),
  });
  const { state, message } = initiator.prepareMessage1({ connectionId: C_I });
  const { state: r2, message: m2 } = responder.processMessage1(message).prepareMessage2({ connectionId: C_R });
  const i2 = state.processMessage2(m2);
  const { message: m3 } = i2.prepareMessage3();
  return { initiatorSees: i2.peer, responderSees: r2.processMessage3(m3).complete().peer };
}

const store = (options: CredentialStoreOptions = {}) => new CredentialStore({ trustAnchors: [root], ...options });

describe('X.509 through an intermediate CA', () => {
  it('x5chain [leaf, intermediate] to a root certificate authenticates both sides', () => {
    const { initiatorSees, responderSees } = run([der(F.responder.cert), der(F.intermediate.cert)], 'x5chain', store());
    assert.equal(initiatorSees.subject, 'CN=edhoc responder');
    assert.equal(initiatorSees.certificates?.length, 2);
    assert.equal(responderSees.subject, 'CN=edhoc initiator');
  });

  it('x5t finds a known leaf, whose chain needs the intermediate as an anchor', () => {
    const known = store({ trustAnchors: [root, new X509Certificate(F.intermediate.cert)] }).addCertificate(der(F.responder.cert));
    assert.equal(run([der(F.responder.cert)], 'x5t', known).initiatorSees.subject, 'CN=edhoc responder');
  });

  it('x5t of a certificate the store does not hold is error 3', () => {
    assert.throws(() => run([der(F.responder.cert)], 'x5t', store()), (e) => e instanceof EdhocError && e.code === 3);
  });

  it('a leaf without its intermediate, or under a non-CA certificate, is refused with error 1', () => {
    assert.throws(() => run([der(F.responder.cert)], 'x5chain', store()), (e) => e instanceof EdhocError && e.code === 1 && /trust anchor/.test(e.message));
    const underLeaf = () =>
      new EdhocResponder({
        suites: [2],
        credentials: [x509Credential([der(F.underleaf.cert), der(F.notca.cert)], key(F.underleaf.key), 'x5chain')],
        peers: store(),
      });
    const { state, message } = new EdhocInitiator({
      method: 0,
      suites: [2],
      credential: x509Credential([der(F.initiator.cert), der(F.intermediate.cert)], key(F.initiator.key), 'x5chain'),
      peers: store(),
    }).prepareMessage1({ connectionId: C_I });
    const { message: m2 } = underLeaf().processMessage1(message).prepareMessage2({ connectionId: C_R });
    assert.throws(() => state.processMessage2(m2), (e) => e instanceof EdhocError && e.code === 1 && /does not verify/.test(e.message));
  });

  it('a root that is not trusted, or a time outside the validity, is refused', () => {
    const elsewhere = new CredentialStore({ trustAnchors: [new X509Certificate(F.notca.cert)] });
    assert.throws(() => run([der(F.responder.cert), der(F.intermediate.cert)], 'x5chain', elsewhere), /trust anchor/);
    const past = store({ now: () => Date.parse('2001-01-01T00:00:00Z') });
    assert.throws(() => run([der(F.responder.cert), der(F.intermediate.cert)], 'x5chain', past), /not valid at this time/);
  });
});
