import { coseKeyFromKeyObject, encodeCcs, generatePrivateKey, CoseCurve } from 'coapsec/cose';
import {
  ccsCredential,
  CredentialStore,
  EdhocError,
  EdhocInitiator,
  EdhocResponder,
} from 'coapsec/edhoc';

// Each side: a static DH key (method 3, suite 2 = P-256) and a CCS naming it with a kid.
const keyI = generatePrivateKey(CoseCurve.P256);
const keyR = generatePrivateKey(CoseCurve.P256);
const ccsI = encodeCcs({ sub: 'client', coseKey: coseKeyFromKeyObject(keyI, { kid: Uint8Array.of(0x2b) }) });
const ccsR = encodeCcs({ sub: 'server', coseKey: coseKeyFromKeyObject(keyR, { kid: Uint8Array.of(0x32) }) });

const initiator = new EdhocInitiator({
  method: 3,
  suites: [2],
  credential: ccsCredential(ccsI, keyI),
  peers: new CredentialStore().addCcs(ccsR),
});
const responder = new EdhocResponder({
  suites: [2],
  credentials: [ccsCredential(ccsR, keyR)],
  peers: new CredentialStore({ allow: (peer) => peer.subject === 'client' }).addCcs(ccsI),
});

try {
  const { state: waitM2, message: message1 } = initiator.prepareMessage1({ connectionId: Uint8Array.of(0x37) });
  const processedM1 = responder.processMessage1(message1);
  const { state: waitM3, message: message2 } = processedM1.prepareMessage2({ connectionId: Uint8Array.of(0x27) });
  const { state: sentM3, message: message3 } = waitM2.processMessage2(message2).prepareMessage3();
  const serverSession = waitM3.processMessage3(message3).complete();
  const clientSession = sentM3.complete();

  // App. A.1: OSCORE Master Secret/Salt, AEAD/hash and the Sender/Recipient IDs.
  const client = clientSession.oscore();
  const server = serverSession.oscore();
  const hex = (id: Uint8Array): string => Buffer.from(id).toString('hex');
  console.log(serverSession.peer.subject, hex(client.senderId), hex(server.senderId), client.masterSecret.length);
} catch (e) {
  // Send e.errorMessage to the peer for an EdhocError; EdhocPeerError is the peer's own error.
  if (e instanceof EdhocError) console.error(`EDHOC error ${e.code}: ${e.message}`);
  throw e;
}
