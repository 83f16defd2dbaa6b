/**
 * Client side of RFC 7959: large request bodies go out in Block1 blocks (adopting a smaller size
 * the server asks for, §2.5, and retrying with the smaller size a 4.13 hints at, §2.9.3); large
 * responses are reassembled from Block2 blocks, checking block numbers, Content-Format and ETag
 * (§2.4) and restarting a GET/FETCH whose representation changed mid-transfer.
 *
 * BERT (RFC 8323 §6): over a connection that allows it (`options.bert`) and when the caller chose
 * no block size, a body goes in BERT blocks (SZX 7, as many 1024-byte units as the peer's
 * Max-Message-Size allows; NUM counts units), later Block2 requests ask for BERT blocks, and BERT
 * responses are reassembled by units. A server that answers with another SZX is followed.
 */
import { BERT_SZX, MAX_SZX, blockSize, blockUnit, encodeBlock, readBlockOption, type BlockOptionError, type BlockValue } from '../coap/block.js';
import { Method, ResponseCode, codeClass } from '../coap/codes.js';
import { bytesEqual, encodeUint, getOption, getUintOption, removeOption, setOption, type CoapMessage } from '../coap/message.js';
import { OptionNumber } from '../coap/options.js';
import type { ReceivedResponse } from '../exchange/endpoint.js';
import { BadResponseError } from '../exchange/errors.js';
import { BERT_UNIT, sliceBert } from '../stream/bert.js';
import { joinBytes } from '../util/bytes.js';

export interface BlockwiseOptions {
  /** SZX for Block1 and for early Block2 negotiation; undefined leaves Block2 size to the server. */
  szx?: number;
  /** Refuse to reassemble more than this many bytes. */
  maxBodySize: number;
  /** Restarts of a transfer whose ETag changed before giving up. */
  maxRestarts: number;
  onProgress?: (bytes: number, total: number | undefined) => void;
  requestTag?: Uint8Array;
  /**
   * The payload of one BERT block to the peer once its connection is up, when that connection
   * allows BERT (RFC 8323 §6); undefined otherwise (UDP, DTLS, a peer without BERT). Consulted
   * only when `szx` is undefined, before a transfer chooses its block size: a block size never
   * grows mid-transfer (libcoap drops such a block).
   */
  bert?: () => Promise<number | undefined>;
}

export type SendRequest = (message: CoapMessage) => Promise<ReceivedResponse>;

const DEFAULT_SZX = 6;

function cloneRequest(template: CoapMessage): CoapMessage {
  return { ...template, options: template.options.slice() };
}

function readBlock(message: CoapMessage, number: number, bert = false): BlockValue | undefined {
  try {
    return readBlockOption(message, number, { bert });
  } catch (error) {
    throw new BadResponseError(`response carries an invalid ${number === OptionNumber.Block1 ? 'Block1' : 'Block2'} option: ${(error as BlockOptionError).message}`);
  }
}

/** Runs a whole request, block-wise where the body or the response needs it. */
export async function blockwiseRequest(send: SendRequest, template: CoapMessage, options: BlockwiseOptions): Promise<ReceivedResponse> {
  let szx = options.szx ?? DEFAULT_SZX;
  const body = template.payload;
  if (body.length <= blockSize(szx)) {
    const first = firstRequest(template, options);
    return afterFirstBlock(send, template, await send(first), options);
  }

  if (options.requestTag) setOption(template, OptionNumber.RequestTag, options.requestTag);
  // BERT only where the caller left the size to us; off for good once the server declines it.
  let bertDeclined = options.szx !== undefined || options.bert === undefined;
  // Bounded: every round trip moves the offset forward, or lowers SZX (at most 6 times, plus once
  // leaving BERT).
  for (let restarts = 0; restarts <= 7; restarts++) {
    let offset = 0;
    let response: ReceivedResponse | undefined;
    let smaller = false;
    // Chosen once per attempt, from block 0: BERT blocks all the way, or plain ones.
    let bertLimit = bertDeclined || szx !== MAX_SZX ? undefined : await options.bert?.();
    while (offset < body.length) {
      const { block, payload } = bertLimit !== undefined ? sliceBert(body, offset / BERT_UNIT, bertLimit) : plainBlock(body, offset, szx);
      const message = cloneRequest(template);
      message.payload = payload;
      setOption(message, OptionNumber.Block1, encodeBlock(block, { bert: block.szx === BERT_SZX }));
      if (offset === 0) setOption(message, OptionNumber.Size1, encodeUint(body.length));
      if (!block.more && options.szx !== undefined) setOption(message, OptionNumber.Block2, encodeBlock({ num: 0, more: false, szx: options.szx }));
      response = await send(message);
      const control = readBlock(response.message, OptionNumber.Block1, block.szx === BERT_SZX);
      if (response.message.code === ResponseCode.RequestEntityTooLarge && control && control.szx < block.szx) {
        // §2.9.3: a hint to try a smaller block size (a BERT block: go back to plain blocks).
        if (block.szx === BERT_SZX) bertDeclined = true;
        szx = Math.min(control.szx, szx);
        smaller = true;
        break;
      }
      if (codeClass(response.message.code) !== 2) return response; // 4.08, 4.13, 5.xx, ...: the final answer
      offset += payload.length;
      options.onProgress?.(offset, body.length);
      // RFC 8323 §6: a server may answer a BERT block with another SZX — plain blocks from here
      // (SZX 6 offsets are whole 1024-byte units, so the transfer goes on where it is).
      if (block.szx === BERT_SZX && control && control.szx !== BERT_SZX) {
        bertDeclined = true;
        bertLimit = undefined;
      }
      // §2.5: heed the server's preference for a smaller size; offsets stay multiples of it.
      if (control && control.szx < szx) szx = control.szx;
    }
    if (!smaller) return continueBlock2(send, withoutBody(template), response!, options);
  }
  throw new BadResponseError('the server kept asking for smaller blocks');
}

/** The request of a body that fits one message: `template`, asking for Block2's size when one was chosen (early negotiation, §2.4). */
export function firstRequest(template: CoapMessage, options: Pick<BlockwiseOptions, 'szx'>): CoapMessage {
  const first = cloneRequest(template);
  if (options.szx !== undefined) setOption(first, OptionNumber.Block2, encodeBlock({ num: 0, more: false, szx: options.szx }));
  return first;
}

/**
 * The response to a request whose body went in one message (`template`'s), once its first response
 * is in: that response, or the rest of its Block2 transfer.
 */
export function afterFirstBlock(send: SendRequest, template: CoapMessage, response: ReceivedResponse, options: BlockwiseOptions): ReceivedResponse | Promise<ReceivedResponse> {
  return wholeResponse(response) ?? continueBlock2(send, template, response, options);
}

/**
 * `response` as the whole response when it carries no Block2 option, undefined when a Block2
 * transfer follows. Most responses come whole: no transfer to continue (continueBlock2 would
 * return the same), so no further async step for them.
 */
export function wholeResponse(response: ReceivedResponse): ReceivedResponse | undefined {
  return getOption(response.message, OptionNumber.Block2) === undefined ? stripBlock2(response, response.message.payload) : undefined;
}

/** The plain (RFC 7959) Block1 block of `body` at byte `offset`. */
function plainBlock(body: Uint8Array, offset: number, szx: number): { block: BlockValue; payload: Uint8Array } {
  const size = blockSize(szx);
  return { block: { num: offset / size, more: offset + size < body.length, szx }, payload: body.subarray(offset, offset + size) };
}

/** Later requests of a Block2 transfer repeat the request without Block1 and (except FETCH) without body (§2.7). */
function withoutBody(template: CoapMessage): CoapMessage {
  const follow = cloneRequest(template);
  removeOption(follow, OptionNumber.Block1);
  removeOption(follow, OptionNumber.Size1);
  if (template.code !== Method.FETCH) follow.payload = new Uint8Array(0);
  return follow;
}

/**
 * Completes a Block2 transfer whose first response is `first` (which may also be an Observe
 * notification carrying block 0, RFC 7959 §2.6). Returns a response holding the whole body.
 */
export async function continueBlock2(send: SendRequest, template: CoapMessage, first: ReceivedResponse, options: BlockwiseOptions): Promise<ReceivedResponse> {
  const restartable = template.code === Method.GET || template.code === Method.FETCH;
  // A BERT Block2 (SZX 7) is legal only on a connection that allows BERT (RFC 8323 §6).
  const bert = (await options.bert?.()) !== undefined;
  let head = first;
  for (let restart = 0; ; restart++) {
    const block = readBlock(head.message, OptionNumber.Block2, bert);
    if (!block || !block.more || codeClass(head.message.code) !== 2) return stripBlock2(head, head.message.payload);
    if (block.num !== 0) throw new BadResponseError(`expected block 0 first, got block ${block.num}`);
    const result = await fetchRemainingBlocks(send, template, head, block, options);
    if (result !== 'changed') return result;
    if (!restartable || restart >= options.maxRestarts) {
      throw new BadResponseError('the representation changed during the block-wise transfer (ETag mismatch)');
    }
    // §2.4: the representation changed; fetch it again from block 0.
    const again = cloneRequest(template);
    removeOption(again, OptionNumber.Observe);
    setOption(again, OptionNumber.Block2, encodeBlock({ num: 0, more: false, szx: block.szx }, { bert }));
    head = await send(again);
  }
}

async function fetchRemainingBlocks(
  send: SendRequest,
  template: CoapMessage,
  head: ReceivedResponse,
  firstBlock: BlockValue,
  options: BlockwiseOptions,
): Promise<ReceivedResponse | 'changed'> {
  const etag = getOption(head.message, OptionNumber.ETag);
  const format = getUintOption(head.message, OptionNumber.ContentFormat);
  const total = getUintOption(head.message, OptionNumber.Size2);
  if (total !== undefined && total > options.maxBodySize) throw new BadResponseError(`response body of ${total} bytes exceeds the limit of ${options.maxBodySize}`);
  const chunks: Uint8Array[] = [head.message.payload];
  let received = head.message.payload.length;
  let szx = firstBlock.szx;
  options.onProgress?.(received, total);
  const follow = cloneRequest(template);
  removeOption(follow, OptionNumber.Observe);
  const bert = (await options.bert?.()) !== undefined;
  // Bounded by the body limit: each round trip adds a non-empty block or ends the loop.
  for (;;) {
    const num = received / blockUnit(szx);
    if (!Number.isInteger(num)) throw new BadResponseError('block size changed to one that does not divide the received length');
    // RFC 8323 §6: where the connection allows BERT and the caller chose no size, ask for BERT
    // blocks (control usage: read as SZX 6, plus the capability to take several).
    const asked = bert && options.szx === undefined && szx === MAX_SZX ? BERT_SZX : szx;
    const request = cloneRequest(follow);
    setOption(request, OptionNumber.Block2, encodeBlock({ num, more: false, szx: asked }, { bert }));
    const response = await send(request);
    if (codeClass(response.message.code) !== 2) return response;
    const block = readBlock(response.message, OptionNumber.Block2, bert);
    if (!block) throw new BadResponseError(`response to block ${num} carries no Block2 option`);
    const responseEtag = getOption(response.message, OptionNumber.ETag);
    if ((etag === undefined) !== (responseEtag === undefined) || (etag && responseEtag && !bytesEqual(etag, responseEtag))) return 'changed';
    if (getUintOption(response.message, OptionNumber.ContentFormat) !== format) {
      throw new BadResponseError('Content-Format changed during the block-wise transfer');
    }
    if (block.num * blockUnit(block.szx) !== received) throw new BadResponseError(`asked for the block at offset ${received}, got block ${block.num}/${blockUnit(block.szx)}`);
    const length = response.message.payload.length;
    // §6: a non-final BERT block carries whole 1024-byte units; a plain one exactly its size.
    if (block.more && (block.szx === BERT_SZX ? length % BERT_UNIT !== 0 : length !== blockSize(block.szx))) throw new BadResponseError(`block ${block.num} is shorter than its size`);
    if (response.message.payload.length === 0 && block.more) throw new BadResponseError('empty block with more to come');
    chunks.push(response.message.payload);
    received += response.message.payload.length;
    if (received > options.maxBodySize) throw new BadResponseError(`response body exceeds the limit of ${options.maxBodySize} bytes`);
    options.onProgress?.(received, total);
    szx = block.szx;
    if (!block.more) return stripBlock2(head, joinBytes(chunks, received));
  }
}

/** The first response's options (minus Block2/Size2) with the whole body. */
function stripBlock2(head: ReceivedResponse, body: Uint8Array): ReceivedResponse {
  if (body === head.message.payload && getOption(head.message, OptionNumber.Block2) === undefined && getOption(head.message, OptionNumber.Size2) === undefined) return head;
  const message: CoapMessage = { ...head.message, options: head.message.options.filter((o) => o.number !== OptionNumber.Block2 && o.number !== OptionNumber.Size2), payload: body };
  return { ...head, message };
}
