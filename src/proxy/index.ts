/**
 * Proxies, importable as `coapsec/proxy`: forward (RFC 7252 §5.7, RFC 8768 Hop-Limit, caching
 * §5.6), reverse, HTTP→CoAP cross-proxy (RFC 8075) and the OSCORE-capable proxy pieces
 * (draft-ietf-core-oscore-capable-proxies). Each is installed on a CoapServer.
 */
export { ForwardProxy, type ForwardProxyOptions, type ProxyCache } from './forward-proxy.js';
export { ResponseCache, type CacheOptions, type CacheStats } from './cache.js';
export { isDeterministicRequest } from './protected-cache.js';
export { ReverseProxy, addReverseProxy, parseReverseMapping, type ReverseMapping, type ReverseProxyOptions } from './reverse-proxy.js';
export { allowList, type ForwardPolicy } from './oscore-proxy.js';
export type { ProxiedRequest, ForwardingHandler, ReverseProxyHandler } from '../server/server.js';
export { startHttpCrossProxy, type HttpCrossProxy, type HttpCrossProxyOptions } from './http-cross-proxy.js';
export { GroupRelay, groupAllowList, type GroupPolicy, type GroupRelayOptions } from './group-relay.js';
export { GroupForwardProxy, GroupReverseProxy, parseGroupMount, type GroupMount } from './group-proxy.js';
export { GroupResponseCache, type CompleteSet, type GroupCacheOptions } from './group-cache.js';
