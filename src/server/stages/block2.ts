/**
 * Block2 (RFC 7959 §2.4): a later block is served from the representation its first block came
 * from; on the way out, a large response of the handler is cut into blocks (and stored for the
 * later ones). The handler's own 5.00 goes out as it is.
 */
import { blockSize } from '../../coap/block.js';
import { Method } from '../../coap/codes.js';
import type { CoapMessage } from '../../coap/message.js';
import { operationKey, type BlockwiseServer } from '../blockwise.js';
import { emptyResponse } from '../response.js';
import { DONE, PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';

export class Block2 implements ServerStage {
  readonly name = 'block2';

  constructor(private readonly blockwise: BlockwiseServer) {}

  receive(request: InboundRequest): StageVerdict {
    const block2 = request.block2;
    if (block2 && block2.num > 0 && !request.block1) {
      const stored = this.blockwise.servedFromStore(representationKey(request), block2, emptyResponse(), request.exchange.bertPayloadLimit);
      if (stored) {
        request.answer(stored);
        return DONE;
      }
    }
    return PASS;
  }

  respond(request: InboundRequest, response: CoapMessage): CoapMessage {
    if (!request.representation) return response;
    // BERT where the requester's connection allows it (RFC 8323 §6; never over UDP).
    const bertLimit = request.exchange.bertPayloadLimit;
    // Most answers asked for no block and fit one: nothing to cut or store (sliceBlock2 would
    // return them as they are), so no key closure and no call per response.
    if (request.block2 === undefined && bertLimit === undefined && response.payload.length <= blockSize(this.blockwise.limits.preferredSzx)) return response;
    // The key is built only when the response is large enough to be stored.
    return this.blockwise.sliceBlock2(request.exchange.context.peerKey, () => representationKey(request), response, request.block2, bertLimit);
  }
}

function representationKey(request: InboundRequest): string {
  const message = request.message;
  return operationKey(request.exchange.context.peerKey, message, message.code === Method.FETCH);
}
