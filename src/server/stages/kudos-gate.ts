/**
 * draft-ietf-core-oscore-key-update §4.3.7 on the server: while a KUDOS update this server started
 * with a peer runs, that peer's other requests wait here, before their OSCORE layer is removed,
 * and go on down the list when the update ends (on CTX_NEW, or CTX_OLD after an abort). The
 * security (src/kudos/server.ts) decides which requests wait and for how long; one that waits too
 * long, or finds the queue full, gets 5.03 with Max-Age 0 and the reason.
 */
import { ResponseCode } from '../../coap/codes.js';
import { encodeUint, type CoapMessage } from '../../coap/message.js';
import { OptionNumber } from '../../coap/options.js';
import { toMessage } from '../response.js';
import { DONE, PASS, type InboundRequest, type ServerStage, type StageVerdict } from '../stage.js';
import type { OscoreLayerSettings } from './oscore-layers.js';

/** A ServerSecurity that can hold a request (KudosServerSecurity). */
interface RequestHolder {
  holdFor(message: CoapMessage): Promise<void> | undefined;
}

const isHolder = (security: unknown): security is RequestHolder => typeof (security as Partial<RequestHolder> | undefined)?.holdFor === 'function';

export class KudosGate implements ServerStage {
  readonly name = 'kudos-gate';

  constructor(private readonly settings: OscoreLayerSettings) {}

  /** Only a security that can hold requests (KUDOS) makes any wait. */
  receives(): boolean {
    return isHolder(this.settings.security);
  }

  receive(request: InboundRequest): StageVerdict {
    const security = this.settings.security;
    const held = isHolder(security) ? security.holdFor(request.message) : undefined;
    if (held === undefined) return PASS;
    const next = request.stage + 1;
    const refuse = (code: number, reason: string): void =>
      request.answer(toMessage({ code, payload: reason, options: [{ number: OptionNumber.MaxAge, value: encodeUint(0) }] }));
    held.then(
      () => {
        try {
          request.pipeline.run(request, next);
        } catch {
          refuse(ResponseCode.InternalServerError, 'request failed after KUDOS update');
        }
      },
      (error: Error) => refuse(ResponseCode.ServiceUnavailable, error.message),
    );
    return DONE;
  }
}
