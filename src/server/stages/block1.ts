/**
 * Block1 reassembly (RFC 7959 §2.5): blocks before the last get 2.31 (or 4.08/4.13) from here; the
 * handler sees the whole body, and its response echoes the last Block1 (§2.3).
 */
import { getUintOption, setOption, type CoapMessage } from '../../coap/message.js';
import { OptionNumber } from '../../coap/options.js';
import { operationKey, type BlockwiseServer } from '../blockwise.js';
import { toMessage } from '../response.js';
import { DONE, PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';

export class Block1Reassembly implements ServerStage {
  readonly name = 'block1';

  constructor(private readonly blockwise: BlockwiseServer) {}

  receive(request: InboundRequest): StageVerdict {
    const block1 = request.block1;
    if (!block1) return PASS;
    const message = request.message;
    const peerKey = request.exchange.context.peerKey;
    const outcome = this.blockwise.receiveBlock1(
      peerKey,
      operationKey(peerKey, message, false),
      block1,
      message.payload,
      getUintOption(message, OptionNumber.ContentFormat),
      getUintOption(message, OptionNumber.Size1),
    );
    if (outcome.kind !== 'complete') {
      request.answer(toMessage(outcome.response));
      return DONE;
    }
    request.payload = outcome.body;
    request.block1Control = outcome.block1;
    return PASS;
  }

  respond(request: InboundRequest, response: CoapMessage): CoapMessage {
    if (request.representation && request.block1Control) setOption(response, OptionNumber.Block1, request.block1Control);
    return response;
  }
}
