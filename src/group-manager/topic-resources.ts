/**
 * The pub-sub profile's KDC on a CoapServer (draft-ietf-ace-coap-pubsub-profile §4, Table 1): an
 * ACE resource server whose tokens carry the AIF-PUBSUB-GROUPCOMM scope (§3.4.1, §3.6), in front of
 * each topic's security group, answered by TopicKdc:
 *
 *   /ace-group/TOPIC               POST join, GET keying material (observable: rekeys notify)
 *   /ace-group/TOPIC/creds         GET the publishers' credentials
 *   /ace-group/TOPIC/num           GET the keying material's version
 *   /ace-group/TOPIC/nodes/NODE    GET own keying material (a publisher's with its Sender ID), DELETE leave
 *
 * It has an ACE resource server of its own (its own audience and scope format), so it runs on a
 * server of its own, beside or instead of the Group OSCORE Group Manager (resources.ts).
 */
import { ResponseCode } from '../coap/codes.js';
import { AceResourceServer } from '../ace/resource-server.js';
import { SCOPE_FORMATS } from '../ace/scope-format.js';
import type { CoapRequest, CoapResponse, Handler } from '../server/resource.js';
import type { CoapServer } from '../server/server.js';
import type { GroupClient } from './online-manager.js';
import { ACE_GROUPCOMM_CBOR, TokenTransferParam } from './parameters.js';
import { PUBSUB_GM_RESOURCE_TYPE } from './pubsub-parameters.js';
import { ACE_GROUP_PATH, clientOf, type GroupManagerAceOptions } from './resources.js';
import type { TopicKdc } from './topic-groups.js';

export interface AttachedTopicKdc {
  readonly kdc: TopicKdc;
  readonly resourceServer: AceResourceServer;
}

/** Serves `kdc`'s topic groups on `server` behind an ACE resource server with pub-sub AIF scopes. */
export function attachTopicKdc(server: CoapServer, kdc: TopicKdc, ace: GroupManagerAceOptions): AttachedTopicKdc {
  const resourceServer = AceResourceServer.attach(server, {
    ...ace,
    scopes: kdc.scopeTokens,
    scopeFormat: SCOPE_FORMATS['aif-pubsub']!,
    tokenTransfer: (peer, scope, request) => kdc.tokenTransfer(peer, scope, request.has(TokenTransferParam.sign_info)),
  });
  const guarded = (handler: (client: GroupClient, request: CoapRequest) => CoapResponse): Handler => (request) => {
    const client = clientOf(request);
    return client === undefined ? resourceServer.creationHints() : handler(client, request);
  };
  const notFound: CoapResponse = { code: ResponseCode.NotFound };
  for (const topic of kdc.topicNames) {
    const base = `${ACE_GROUP_PATH}/${topic}`;
    server.resource(
      base,
      { POST: guarded((client, request) => kdc.join(client, topic, request.payload)), GET: guarded((client) => kdc.keyMaterial(client, topic)) },
      { observable: true, ct: ACE_GROUPCOMM_CBOR, rt: PUBSUB_GM_RESOURCE_TYPE },
    );
    server.resource(`${base}/creds`, { GET: guarded((client) => kdc.credentials(client, topic)) }, { ct: ACE_GROUPCOMM_CBOR });
    server.resource(`${base}/num`, { GET: guarded((client) => kdc.version(client, topic)) }, { ct: ACE_GROUPCOMM_CBOR });
    server.add({
      path: `${base}/nodes`,
      subtree: true,
      hidden: true,
      handlers: {
        GET: guarded((client, request) => (request.subPath.length === 1 ? kdc.nodeMaterial(client, topic, request.subPath[0]!) : notFound)),
        DELETE: guarded((client, request) => (request.subPath.length === 1 ? kdc.leave(client, topic, request.subPath[0]!) : notFound)),
      },
    });
  }
  // RFC 9594 §6 (point-to-point through Observe): members observing the topic's group resource
  // learn of each rekey, and of a new publisher (whose credential they then fetch from /creds).
  kdc.onRekey = (topic) => server.changed(`${ACE_GROUP_PATH}/${topic}`);
  kdc.onPublishersChanged = (topic) => server.changed(`${ACE_GROUP_PATH}/${topic}`);
  return { kdc, resourceServer };
}
