/**
 * The KUDOS resource of draft-ietf-core-oscore-key-update §4.7.2–§4.7.3 and §8.4–§8.5:
 * /.well-known/kudos, resource type "core.kudos". A request to it "does not pertain to any real
 * application" (§4.7.2): it exists so a client can send a KUDOS request with no side effect. The
 * KUDOS processing itself is OSCORE's (server.ts); the handler only answers, without a payload
 * (§4.3.6: "the plain CoAP response ... SHOULD NOT include an application payload"). It is only
 * reachable through OSCORE (4.01 otherwise), which the draft's "osc" attribute (§4.3.6) announces.
 */
import { ResponseCode } from '../coap/codes.js';
import type { ResourceDefinition } from '../server/resource.js';

export const KUDOS_RESOURCE_PATH = '/.well-known/kudos';
export const KUDOS_RESOURCE_TYPE = 'core.kudos';

export function kudosResource(): ResourceDefinition {
  const answer = () => ({ code: ResponseCode.Changed });
  return {
    path: KUDOS_RESOURCE_PATH,
    rt: KUDOS_RESOURCE_TYPE,
    requireOscore: true,
    // The draft names no method; a KUDOS request carries no application payload, so POST is the
    // natural one, and GET/FETCH (safe) answer 2.05 for a client that probes with them.
    handlers: { POST: answer, GET: () => ({ code: ResponseCode.Content }) },
  };
}
