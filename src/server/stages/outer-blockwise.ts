/**
 * Outer block-wise on an OSCORE message (RFC 8613 §8.2.1, §4.1.3.4.2), below the OSCORE layers:
 * a proxy may fragment the protected request (outer Block1, reassembled here up to the block-wise
 * body limit, MAX_UNFRAGMENTED_SIZE) or ask for the protected response in blocks (outer Block2).
 * Later outer Block2 blocks are served from the stored protected response: the repeated OSCORE
 * request must not reach the replay check.
 */
import { readBlockOption, type BlockValue } from '../../coap/block.js';
import { ResponseCode } from '../../coap/codes.js';
import { MessageType, getOption, getUintOption, setOption, type CoapMessage } from '../../coap/message.js';
import { checkOptionsAmong } from '../../coap/option-validation.js';
import { OptionNumber } from '../../coap/options.js';
import { operationKey, type BlockwiseServer } from '../blockwise.js';
import type { RequestLog } from '../request-log.js';
import { emptyResponse, toMessage } from '../response.js';
import type { ServerSecurity } from '../security.js';
import { DONE, PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';
import { suppressedByNoResponse } from './no-response.js';

/**
 * Outer options of an OSCORE message that the server reads before decrypting it (§8.2, §8.2.1;
 * EDHOC: RFC 9668 §3.3.1, stages/edhoc-combined.ts, after outer Block1 reassembly, §3.3.2).
 */
const OUTER_OPTIONS_READ_BEFORE_DECRYPTION: ReadonlySet<number> = new Set([OptionNumber.Oscore, OptionNumber.Edhoc, OptionNumber.Block2, OptionNumber.Block1, OptionNumber.Size1]);

export class OuterBlockwise implements ServerStage {
  readonly name = 'outer-blockwise';

  constructor(
    private readonly settings: { readonly security: ServerSecurity | undefined },
    private readonly blockwise: BlockwiseServer,
    private readonly log: RequestLog,
  ) {}

  /** Only an OSCORE message is read here, and only a server with security removes its layer. */
  receives(): boolean {
    return this.settings.security !== undefined;
  }

  /** Acts only on a request whose OSCORE layers the oscore-layers stage tried to remove. */
  responds(): boolean {
    return this.settings.security !== undefined;
  }

  receive(request: InboundRequest): StageVerdict {
    const received = request.message;
    if (this.settings.security === undefined || getOption(received, OptionNumber.Oscore) === undefined) return PASS;
    // The outer options read before decryption are checked first (RFC 7252 §5.4.3/§5.4.5; RFC
    // 8613 §2: the OSCORE option is 0-255 bytes long); nobody needs a key to send them.
    const outerCheck = checkOptionsAmong(received.options, OUTER_OPTIONS_READ_BEFORE_DECRYPTION);
    if (outerCheck.criticalProblem) {
      this.refuseBadOption(request, outerCheck.criticalProblem.reason);
      return DONE;
    }
    received.options = outerCheck.options;
    const peerKey = request.exchange.context.peerKey;
    let block1: BlockValue | undefined;
    let block2: BlockValue | undefined;
    try {
      block1 = readBlockOption(received, OptionNumber.Block1);
      block2 = readBlockOption(received, OptionNumber.Block2);
    } catch (error) {
      request.answer(toMessage({ code: ResponseCode.BadRequest, payload: (error as Error).message }));
      return DONE;
    }
    if (!block1 && !block2) return PASS;
    // The OSCORE option (kid, Partial IV) identifies the protected request; the payload is left out
    // because Block2 follow-ups after a Block1 transfer carry none (RFC 7959 §2.7).
    if (block2 && block2.num > 0 && !block1) {
      const stored = this.blockwise.servedFromStore(operationKey(peerKey, received, false), block2, emptyResponse());
      if (stored) {
        request.answer(stored);
        return DONE;
      }
    }
    let message = received;
    if (block1) {
      const outcome = this.blockwise.receiveBlock1(peerKey, operationKey(peerKey, received, false), block1, received.payload, undefined, getUintOption(received, OptionNumber.Size1));
      if (outcome.kind !== 'complete') {
        request.answer(toMessage(outcome.response));
        return DONE;
      }
      message = { ...received, payload: outcome.body, options: received.options.filter((o) => o.number !== OptionNumber.Block1 && o.number !== OptionNumber.Size1) };
      request.outerBlock1Control = outcome.block1;
      request.message = message;
    }
    if (block2) {
      request.outerBlock2 = block2;
      request.outerKey = operationKey(peerKey, message, false);
    }
    return PASS;
  }

  /**
   * The protected response, cut to the outer blocks asked for. Only once this server tried to remove
   * an OSCORE layer (stages/oscore-layers.ts): a message a forward or reverse proxy here took with
   * its layers intact is answered as the proxy answers.
   */
  respond(request: InboundRequest, response: CoapMessage): CoapMessage {
    if (request.removedLayers === undefined) return response;
    if (request.outerBlock1Control) setOption(response, OptionNumber.Block1, request.outerBlock1Control);
    const block2 = request.outerBlock2;
    return block2 ? this.blockwise.sliceBlock2(request.exchange.context.peerKey, request.outerKey, response, { num: 0, more: false, szx: block2.szx }) : response;
  }

  /** stages/bad-option.ts for the outer options, logged and subject to No-Response as the inner ones are. */
  private refuseBadOption(request: InboundRequest, reason: string): void {
    const received = request.message;
    if (received.type !== MessageType.CON) {
      request.exchange.reject();
      return;
    }
    const response = toMessage({ code: ResponseCode.BadOption, payload: reason });
    this.log.record(received, request.context, response);
    if (suppressedByNoResponse(received, response.code)) request.exchange.acknowledge();
    else request.answer(response);
  }
}
