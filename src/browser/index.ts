/**
 * coapsec/browser: the client side of coapsec for web pages — CoAP messages, CoAP over
 * WebSockets with the browser's WebSocket, the exchange layer, block-wise, OSCORE with Web
 * Crypto and IndexedDB-durable sequence numbers, and EDHOC with Web Crypto. No Node built-ins
 * and no Buffer on this path (test/browser-bundle.test.ts bundles it for the browser and checks); bundled as
 * dist/browser/coapsec.js (scripts/build-browser.mjs). See docs/browser.md.
 */
export { type CoapMessage, type CoapOption, MessageType, createMessage, encodeString, decodeString, encodeUint, decodeUint, getOption, setOption } from '../coap/message.js';
export { encodeMessage, decodeMessage, MessageFormatError } from '../coap/codec.js';
export { Method, ResponseCode, codeToString } from '../coap/codes.js';
export { OptionNumber } from '../coap/options.js';
export { CoapEndpoint } from '../exchange/endpoint.js';
export { encodeOscoreOption, decodeOscoreOption } from '../oscore/option.js';
export type { ContextParams, DerivedContext } from '../oscore/context.js';
export { hkdfInfo, nonce } from '../oscore/context-rules.js';
export { additionalData, externalAad, encodePlaintext, type RequestBinding } from '../oscore/cose-object.js';
export { browserAead, deriveContextAsync, protectRequestAsync, unprotectRequestAsync, protectResponseAsync, unprotectResponseAsync } from './oscore.js';
export { BrowserCoapClient, ResponseRejectedError, type BrowserClientOptions, type BrowserOscore, type BrowserResponse, type RequestParams, type SequenceNumbers } from './client.js';
export { BrowserWsTransport, type BrowserWsOptions } from './websocket.js';
export { contextParamsOf, openOscore, type OscoreCredentialsObject, type OpenOscoreOptions } from './credentials.js';
export { IndexedDbReservations, ReservedSequence, senderKeyName, type ReservationStorage } from '../credentials/indexeddb-sequence-store.js';
export { WEB_AEADS, WEB_HKDFS, type AsyncAead, type AsyncHkdf } from '../crypto/web-crypto.js';
export { bytesToHex, hexToBytes } from '../util/bytes.js';
export {
  BrowserEdhocInitiator,
  BrowserEdhocResponder,
  BrowserEdhocSession,
  ccsOwnCredential,
  ccsPeer,
  pinnedPeers,
  x509OwnCredential,
  x509Peer,
  x5tOf,
  type BrowserInitiatorConfig,
  type BrowserOwnCredential,
  type BrowserPeerCredential,
  type BrowserResponderConfig,
} from './edhoc.js';
export { WEB_EDHOC_CRYPTO, p256Point, webEcdhKeyPair, type WebPrivateKey, type WebPublicKey } from './edhoc-crypto.js';
export { EdhocError, EdhocPeerError, EdhocStateError, EdhocConfigError } from '../edhoc/errors.js';
export { idCredKid, idCredKccs, idCredX5t, type IdCred } from '../edhoc/identifiers.js';
export { CoseCurve, CoseSignAlg, CoseAead } from '../cose/ids.js';
export { edhocOverCoap, type EdhocOverCoapOptions, type EdhocOverCoapResult } from './edhoc-client.js';
