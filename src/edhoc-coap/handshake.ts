/**
 * The EDHOC Initiator over CoAP, forward message flow (RFC 9528 App. A.2.1): message_1 prefixed
 * with `true` in a POST to the Responder's EDHOC resource, message_2 in the 2.04, message_3
 * prefixed with C_R in a second POST (or, RFC 9668, inside the first OSCORE request), message_4
 * in its 2.04 when the application profile uses it. EDHOC error messages come back as 4.xx/5.xx
 * with Content-Format 64 (A.2.3) and are raised as EdhocPeerError.
 */
import type { CoapClient } from '../client/client.js';
import { PLAIN } from '../client/security.js';
import { ContentFormat } from '../coap/content-format.js';
import { Method, ResponseCode, codeToString } from '../coap/codes.js';
import { EMPTY_BYTES, MessageType, contentFormatOf, encodeString, encodeUint, printablePayload, type CoapOption } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { EadItem } from '../edhoc/ead.js';
import { EdhocPeerError, parseErrorMessage } from '../edhoc/errors.js';
import { EdhocInitiator, type InitiatorConfig, type InitiatorProcessedM2 } from '../edhoc/initiator.js';
import type { CoapEndpoint, RequestOptions } from '../exchange/endpoint.js';
import { CoapRequestError } from '../exchange/errors.js';
import type { PeerAddress } from '../transport/transport.js';
import { EDHOC_PATH, prefixNewSession } from './transfer.js';

/** What the EDHOC resource answered. */
export interface EdhocReply {
  readonly code: number;
  readonly payload: Uint8Array;
  readonly contentFormat: number | undefined;
}

/** POSTs one prefixed EDHOC message (Content-Format 65) to the peer's EDHOC resource. */
export type EdhocPost = (payload: Uint8Array) => Promise<EdhocReply>;

/** The EDHOC resource answered something that is neither the next message nor an EDHOC error. */
export class EdhocTransferError extends CoapRequestError {}

/** EDHOC POSTs through a CoapClient to `origin` (coap://host:port), unprotected. */
export function postOverClient(client: CoapClient, origin: string, path = EDHOC_PATH): EdhocPost {
  const uri = origin.replace(/\/+$/, '') + path;
  return async (payload) => {
    // An empty POST (the reverse flow's first request, A.2.2) has no Content-Format.
    const contentFormat = payload.length > 0 ? { contentFormat: ContentFormat.CidEdhocCborSeq } : {};
    const response = await client.request({ method: 'POST', uri, payload, ...contentFormat, security: PLAIN, allowUnprotected: true });
    return { code: response.code, payload: response.payload, contentFormat: response.contentFormat };
  };
}

/** EDHOC POSTs through an endpoint to `peer` (lockstep tests, or a server's own endpoint). */
export function postOverEndpoint(endpoint: CoapEndpoint, peer: PeerAddress, path = EDHOC_PATH, options: RequestOptions = {}): EdhocPost {
  const pathOptions: CoapOption[] = path
    .split('/')
    .filter((segment) => segment.length > 0)
    .map((segment) => ({ number: OptionNumber.UriPath, value: encodeString(segment) }));
  return async (payload) => {
    const message = {
      type: MessageType.CON,
      code: Method.POST,
      messageId: 0,
      token: EMPTY_BYTES,
      options: payload.length > 0 ? [...pathOptions, { number: OptionNumber.ContentFormat, value: encodeUint(ContentFormat.CidEdhocCborSeq) }] : pathOptions,
      payload,
    };
    const { message: response } = await endpoint.request(message, peer, options);
    return { code: response.code, payload: response.payload, contentFormat: contentFormatOf(response) };
  };
}

/** The EDHOC message of a 2.04, or the error the reply stands for. */
export function expectChanged(reply: EdhocReply, what: string): Uint8Array {
  if (reply.code === ResponseCode.Changed) return reply.payload;
  if (reply.contentFormat === ContentFormat.EdhocCborSeq) throw parseErrorMessage(reply.payload);
  const diagnostic = reply.payload.length > 0 ? `: ${printablePayload(reply.payload)}` : '';
  throw new EdhocTransferError(`the EDHOC resource answered ${what} with ${codeToString(reply.code)}${diagnostic}`);
}

/**
 * message_1 and message_2 (§5.2, §5.3), with the one retry of §6.3.1 when the Responder refuses
 * the selected suite (error 2 with SUITES_R).
 */
export async function exchangeMessages12(config: InitiatorConfig, post: EdhocPost, connectionIdI: Uint8Array, ead1: readonly EadItem[] = []): Promise<InitiatorProcessedM2> {
  let initiator = new EdhocInitiator(config);
  for (let attempt = 0; ; attempt++) {
    const { state, message } = initiator.prepareMessage1({ connectionId: connectionIdI, ead: ead1 });
    try {
      return state.processMessage2(expectChanged(await post(prefixNewSession(message)), 'message_1'));
    } catch (e) {
      if (!(e instanceof EdhocPeerError && e.code === 2 && attempt === 0)) throw e;
      initiator = EdhocInitiator.afterSuitesRejected(config, e);
    }
  }
}
