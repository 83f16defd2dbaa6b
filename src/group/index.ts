/**
 * CoAP group communication (draft-ietf-core-groupcomm-bis) for applications: the group client
 * with its response streams, Group OSCORE exchanges, Deterministic Requests (cacheable OSCORE, as
 * a client's MessageSecurity), member files with durable sequence numbers, the multicast transports
 * the client and a group server (ServerOptions.group) run on, and group requests through a proxy
 * (draft-ietf-core-groupcomm-proxy: GroupProxyClient, Reply-From).
 */
export { GroupClient, GroupResponseStream, describeOrigin, isGroupUri, type GroupClientOptions, type GroupRefusal, type GroupRequest, type GroupResponse } from './group-client.js';
export { ProtectedGroupExchange, protectForGroup, type GroupMemberLabel, type VerifiedGroupResponse } from './group-security.js';
export { DeterministicClientSecurity, type DeterministicSecurityOptions } from '../client/deterministic.js';
export { openGroupMember, readMemberFile, type OpenedGroupMember } from './member.js';
export { TokenMatcher, type GroupResponseListener } from './token-matcher.js';
export { GroupProxyClient, type GroupProxyClientOptions, type ProxiedGroupRequest } from './proxy-client.js';
export { decodeReplyFrom, encodeReplyFrom, ReplyFromError, type ReplyFrom } from './reply-from.js';
export {
  ALL_COAP_NODES_IPV4,
  ALL_COAP_NODES_IPV6,
  MulticastClientTransport,
  MulticastServerTransport,
  isMulticastAddress,
  type MulticastClientOptions,
  type MulticastServerOptions,
} from '../transport/multicast.js';
export type { GroupServing, GroupMembership } from '../server/stages/group-request.js';
