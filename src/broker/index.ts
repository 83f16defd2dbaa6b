/**
 * The publish-subscribe broker (draft-ietf-core-coap-pubsub), importable as `coapsec/broker`:
 * installed on a CoapServer, with its authorization hook, topic ACLs and limits (docs/pubsub.md).
 */
export { PubSubBroker, type BrokerOptions, type BrokerAuthorizer, type AuthorizationRequest, type BrokerOperation } from './broker.js';
export { DEFAULT_BROKER_LIMITS, type BrokerLimits } from './limits.js';
export { topicAclAuthorizer, loadTopicAcl, TopicAclError, type TopicAcl } from './topic-acl.js';
export { PUBSUB_CONTENT_FORMAT, TopicPropertyError, encodeTopicProperties, decodeTopicProperties, type TopicProperties, type PartialTopicProperties } from './topic-properties.js';
