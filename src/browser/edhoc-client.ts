/**
 * EDHOC over CoAP from a page (RFC 9528 App. A.2.1, forward flow): message_1 prefixed with `true`
 * and message_3 prefixed with C_R, POSTed in the clear to the server's /.well-known/edhoc through
 * whatever carries the page's requests (a WebSocket, `coapsec proxy --ws`), then the OSCORE
 * context of App. A.1 with IndexedDB sequence numbers. With `combined`, message_3 is not POSTed:
 * it rides in the first OSCORE request (RFC 9668 §3), saving a round trip; the client created
 * with `edhocMessage3` sends it there.
 */
import { ContentFormat } from '../coap/content-format.js';
import { ResponseCode } from '../coap/codes.js';
import { contentFormatOf } from '../coap/message.js';
import type { ReservationStorage } from '../credentials/indexeddb-sequence-store.js';
import { CoseHash } from '../cose/ids.js';
import { parseErrorMessage } from '../edhoc/errors.js';
import { EDHOC_PATH, prefixNewSession, prefixWithIdentifier } from '../edhoc-coap/transfer.js';
import type { BrowserCoapClient, BrowserOscore, BrowserResponse } from './client.js';
import { openOscore } from './credentials.js';
import { BrowserEdhocInitiator, type BrowserEdhocSession, type BrowserInitiatorConfig } from './edhoc.js';

/** HKDF SHA-256 as OSCORE names it (RFC 8613 §3.2.1); A.1 takes the one of the application hash. */
const OSCORE_HKDF_SHA_256 = -10;

export interface EdhocOverCoapOptions {
  /** C_I: this page's connection identifier, the Recipient ID of its OSCORE context. */
  readonly connectionId: Uint8Array;
  /** Send message_3 inside the first OSCORE request (RFC 9668) instead of a POST of its own. */
  readonly combined?: boolean;
  /** The EDHOC resource (default /.well-known/edhoc). */
  readonly path?: string;
  /** Where the context's sequence numbers are reserved (default: IndexedDB). */
  readonly storage?: ReservationStorage;
}

export interface EdhocOverCoapResult {
  readonly session: BrowserEdhocSession;
  /** The App. A.1 context, for `new BrowserCoapClient({ oscore })`. */
  readonly oscore: BrowserOscore;
  /** With `combined`: message_3, for `new BrowserCoapClient({ edhocMessage3 })`. */
  readonly message3?: Uint8Array;
}

/** A response to an EDHOC POST: 2.04 with the next message, or an EDHOC error message (App. A.2.3). */
function expectChanged(response: BrowserResponse, what: string): Uint8Array {
  if (response.code === ResponseCode.Changed) return response.payload;
  if (contentFormatOf(response.message) === ContentFormat.EdhocCborSeq) throw parseErrorMessage(response.payload);
  throw new Error(`${what} was answered ${response.status}`);
}

/**
 * Runs EDHOC as Initiator with the server behind `client` (a client without OSCORE, naming the
 * device with `origin` when it goes through a forward proxy). Rejects with EdhocError,
 * EdhocPeerError (the server's EDHOC error) or an Error naming an unexpected CoAP answer.
 */
export async function edhocOverCoap(client: BrowserCoapClient, config: BrowserInitiatorConfig, options: EdhocOverCoapOptions): Promise<EdhocOverCoapResult> {
  const path = options.path ?? EDHOC_PATH;
  const post = (payload: Uint8Array) => client.post(path, payload, { contentFormat: ContentFormat.CidEdhocCborSeq });
  const { state: waitM2, message: message1 } = await new BrowserEdhocInitiator(config).prepareMessage1({ connectionId: options.connectionId });
  const processedM2 = await waitM2.processMessage2(expectChanged(await post(prefixNewSession(message1)), 'message_1'));
  const { state: sentM3, message: message3 } = await processedM2.prepareMessage3();
  let session: BrowserEdhocSession;
  if (options.combined === true) session = await sentM3.complete();
  else {
    const message4 = expectChanged(await post(prefixWithIdentifier(processedM2.connectionIdR, message3)), 'message_3');
    session = message4.length > 0 ? await sentM3.processMessage4(message4) : await sentM3.complete();
  }
  const parameters = await session.oscore();
  if (parameters.hashAlgorithm !== CoseHash.SHA_256) throw new Error(`no OSCORE HKDF in the browser build for the application hash ${parameters.hashAlgorithm}`);
  const oscore = await openOscore(
    { masterSecret: parameters.masterSecret, masterSalt: parameters.masterSalt, senderId: parameters.senderId, recipientId: parameters.recipientId, aead: parameters.aeadAlgorithm, hkdf: OSCORE_HKDF_SHA_256 },
    options.storage !== undefined ? { storage: options.storage } : {},
  );
  return { session, oscore, ...(options.combined === true ? { message3 } : {}) };
}
