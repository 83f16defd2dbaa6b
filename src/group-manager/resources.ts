/**
 * The Group Manager on a CoapServer: an ACE resource server (src/ace/: /authz-info, tokens whose
 * AIF scope names groups and roles, OSCORE contexts from the RFC 9203 profile) in front of the
 * RFC 9594 §4 interface of each group, answered by OnlineGroupManager:
 *
 *   /ace-group/GROUPNAME               POST join, GET keying material (observable: rekeys notify)
 *   /ace-group/GROUPNAME/creds         GET the members' credentials
 *   /ace-group/GROUPNAME/num           GET the keying material's version
 *   /ace-group/GROUPNAME/nodes/NODE    GET own keying material with Sender ID, DELETE leave
 *   /ace-group/GROUPNAME/kdc-cred      GET (members) and FETCH (signature verifiers): the GM's credential with PoP
 *   /ace-group/GROUPNAME/verif-data    GET (signature verifiers): algorithms, Gid, Signature Encryption Key
 *   /ace-group/GROUPNAME/stale-sids    FETCH the Sender IDs gone stale since a version (key-groupcomm-oscore §11.3.1)
 *   /ace-group/GROUPNAME/policies      GET the group policies (RFC 9594 §4.6)
 *   /ace-group/GROUPNAME/active        GET whether the group is active (key-groupcomm-oscore §8.2; observable)
 *   /ace-group/GROUPNAME/nodes/NODE/cred  POST a new authentication credential with PoP (RFC 9594 §4.9)
 *   /ace-group                         FETCH group names and URIs by Gid (RFC 9594 §4.2)
 *
 * Key Renewal (a new Sender ID) is PUT to /nodes/NODE in RFC 9594 §4.8.2 and POST in
 * key-groupcomm-oscore §9.2 and its Table 2; both are taken.
 *
 * Every one of them takes only requests an access token's context verified (RFC 9594 §4.1.2:
 * without one, 4.01 with the AS Request Creation Hints).
 */
import { ResponseCode } from '../coap/codes.js';
import { ContentFormat } from '../coap/content-format.js';
import { AceResourceServer, type AceResourceServerOptions } from '../ace/resource-server.js';
import { SCOPE_FORMATS } from '../ace/scope-format.js';
import type { CoapRequest, CoapResponse, Handler } from '../server/resource.js';
import type { CoapServer } from '../server/server.js';
import type { GroupClient, OnlineGroupManager } from './online-manager.js';
import { ACE_GROUPCOMM_CBOR, TokenTransferParam } from './parameters.js';
import { ACE_GROUP_PATH } from './group-queries.js';

export type GroupManagerAceOptions = Omit<AceResourceServerOptions, 'scopes' | 'scopeFormat'>;

export interface AttachedGroupManager {
  readonly manager: OnlineGroupManager;
  readonly resourceServer: AceResourceServer;
}

export { ACE_GROUP_PATH };

/** Serves `manager`'s groups on `server` behind an ACE resource server (AIF scopes, key-groupcomm-oscore §3). */
export function attachGroupManager(server: CoapServer, manager: OnlineGroupManager, ace: GroupManagerAceOptions): AttachedGroupManager {
  const resourceServer = AceResourceServer.attach(server, {
    ...ace,
    scopes: manager.scopeTokens,
    scopeFormat: SCOPE_FORMATS['aif-oscore-group']!,
    tokenTransfer: (peer, scope, request) => manager.tokenTransfer(peer, scope, request.has(TokenTransferParam.sign_info)),
  });
  const guarded = (handler: (client: GroupClient, request: CoapRequest) => CoapResponse): Handler => (request) => {
    const client = clientOf(request);
    return client === undefined ? resourceServer.creationHints() : handler(client, request);
  };
  for (const group of manager.groupNames) {
    const base = `${ACE_GROUP_PATH}/${group}`;
    server.resource(
      base,
      {
        POST: guarded((client, request) => manager.join(client, group, request.payload)),
        GET: guarded((client) => manager.keyMaterial(client, group)),
      },
      { observable: true, ct: ACE_GROUPCOMM_CBOR, rt: 'core.osc.gm' },
    );
    server.resource(
      `${base}/creds`,
      { GET: guarded((client) => manager.credentials(client, group)), FETCH: guarded((client, request) => manager.selectedCredentials(client, group, request.payload)) },
      { ct: ACE_GROUPCOMM_CBOR },
    );
    server.resource(`${base}/policies`, { GET: guarded((client) => manager.policies(client, group)) }, { ct: ACE_GROUPCOMM_CBOR });
    server.resource(`${base}/active`, { GET: guarded((client) => manager.status(client, group)) }, { observable: true, ct: ContentFormat.Cbor });
    server.resource(`${base}/num`, { GET: guarded((client) => manager.version(client, group)) }, { ct: ACE_GROUPCOMM_CBOR });
    server.resource(
      `${base}/kdc-cred`,
      { GET: guarded((client) => manager.kdcCredential(client, group)), FETCH: guarded((client, request) => manager.kdcCredentialForVerifier(client, group, request.payload)) },
      { ct: ACE_GROUPCOMM_CBOR },
    );
    server.resource(`${base}/verif-data`, { GET: guarded((client) => manager.verificationData(client, group)) }, { ct: ACE_GROUPCOMM_CBOR });
    server.resource(`${base}/stale-sids`, { FETCH: guarded((client, request) => manager.staleSenderIds(client, group, request.payload)) }, { ct: ContentFormat.Cbor });
    server.add({
      path: `${base}/nodes`,
      subtree: true,
      hidden: true,
      handlers: {
        GET: guarded((client, request) => (request.subPath.length === 1 ? manager.nodeMaterial(client, group, request.subPath[0]!) : notFound)),
        PUT: guarded((client, request) => (request.subPath.length === 1 ? manager.renewSenderId(client, group, request.subPath[0]!, request.payload) : notFound)),
        POST: guarded((client, request) => {
          const [node, cred, ...more] = request.subPath;
          if (node !== undefined && cred === undefined) return manager.renewSenderId(client, group, node, request.payload);
          if (node !== undefined && cred === 'cred' && more.length === 0) return manager.uploadCredential(client, group, node, request.payload);
          return notFound;
        }),
        DELETE: guarded((client, request) => (request.subPath.length === 1 ? manager.leave(client, group, request.subPath[0]!) : notFound)),
      },
    });
  }
  server.resource(ACE_GROUP_PATH, { FETCH: guarded((client, request) => manager.groupNamesOf(client, request.payload)) }, { ct: ACE_GROUPCOMM_CBOR });
  // RFC 9594 §6: members observing the group's resource learn of each rekey.
  manager.onRekey = (group) => server.changed(`${ACE_GROUP_PATH}/${group}`);
  manager.onStatusChange = (group) => server.changed(`${ACE_GROUP_PATH}/${group}/active`);
  return { manager, resourceServer };
}

const notFound: CoapResponse = { code: ResponseCode.NotFound };

/** The client as its token's OSCORE context names it; undefined for a request no token context verified. */
export function clientOf(request: CoapRequest): GroupClient | undefined {
  const scope = request.context.scope;
  const layer = request.context.oscore?.at(-1);
  return scope === undefined || layer === undefined ? undefined : { id: layer.peer, scope };
}

