/**
 * The client side of Group OSCORE for requests to a group (draft-ietf-core-oscore-groupcomm): a
 * request protected once, in group mode (or pairwise mode toward one member), and every response
 * verified against the Recipient Context of the server that signed it — created on the fly for a
 * member's Sender ID the Group Manager vouched for, with its own window (§5.3.1, via
 * GroupResponseTracker) — then labelled with that member.
 */
import { toHex } from '../cose/cbor.js';
import type { CoapMessage } from '../coap/message.js';
import type { GroupSecurityContext } from '../group-oscore/context.js';
import { credentialSubject } from '../group-oscore/credential.js';
import {
  type GroupMode,
  type GroupRequestBinding,
  type GroupRequestTarget,
  protectGroupRequest,
  unprotectGroupResponse,
} from '../group-oscore/protect.js';
import { GroupResponseTracker } from '../group-oscore/responses.js';

/** Which group member answered, as Group OSCORE authenticated it. */
export interface GroupMemberLabel {
  /** The member's Sender ID, hex. */
  readonly senderId: string;
  /** The 'sub' of its CCS, when it has one. */
  readonly name: string | undefined;
  readonly mode: GroupMode;
}

export type VerifiedGroupResponse = { ok: true; message: CoapMessage; member: GroupMemberLabel } | { ok: false; reason: string };

/** One protected request and what its responses are checked against. */
export class ProtectedGroupExchange {
  readonly #tracker = new GroupResponseTracker();

  constructor(
    readonly context: GroupSecurityContext,
    readonly message: CoapMessage,
    readonly binding: GroupRequestBinding,
  ) {}

  /** §7.4/§8.6, then §5.3.1: each server's responses once and in order (notifications by their Partial IV). */
  verify(response: CoapMessage): VerifiedGroupResponse {
    const result = unprotectGroupResponse(response, this.context, this.binding);
    if (!result.ok) return result;
    if (!this.#tracker.accept(result.kid, result.sequenceNumber)) return { ok: false, reason: 'Replayed or reordered response' };
    return { ok: true, message: result.message, member: { senderId: toHex(result.kid), name: credentialSubject(result.recipient.credential.bytes), mode: result.mode } };
  }
}

/** Protects `request` for the group (or one member, pairwise) with the context's Sender Context. */
export function protectForGroup(context: GroupSecurityContext, request: CoapMessage, target: GroupRequestTarget): ProtectedGroupExchange {
  const { message, binding } = protectGroupRequest(request, context, target);
  return new ProtectedGroupExchange(context, message, binding);
}
