/** draft-ietf-core-oscore-capable-proxies §2.2 / Appendix C: the nine-step option-protection algorithm. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Method } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeString, encodeUint, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { UnrecognizedOptionError, escalate, escalatingClassOf, isOuterOnly, pathConsumers, type OptionKnowledge } from '../src/oscore/escalation.js';

const k = (over: Partial<OptionKnowledge>): OptionKnowledge => ({
  added: true, xIsConsumer: true, xIsNextConsumer: true, xIsNextHop: true, nextHopIsNextConsumer: true, xNeedsBeforeDecrypt: false, ...over,
});
const message = (...options: CoapOption[]): CoapMessage => ({ type: MessageType.CON, code: Method.GET, messageId: 0, token: EMPTY_BYTES, options, payload: EMPTY_BYTES });
const PS = { number: OptionNumber.ProxyScheme, value: encodeString('coap') };
const HOST = { number: OptionNumber.UriHost, value: encodeString('example.com') };
const PORT = { number: OptionNumber.UriPort, value: encodeUint(61616) };
const HOP = { number: OptionNumber.HopLimit, value: encodeUint(5) };
const N = OptionNumber;

test('only outer-only options go through the algorithm', () => {
  for (const n of [N.UriHost, N.UriPort, N.ProxyUri, N.ProxyScheme, N.HopLimit, N.Oscore]) assert.equal(isOuterOnly(n), true, String(n));
  for (const n of [N.UriPath, N.UriQuery, N.Observe, N.MaxAge, N.Block2, N.ContentFormat, N.NoResponse]) assert.equal(isOuterOnly(n), false, String(n));
});

test('each path through the nine steps', () => {
  const m = message(PS, HOST);
  // 1 → 2 → 3 → 5 → 6 → 8: added, X the immediately next consumer, not needed before decryption.
  assert.deepEqual(escalate(N.ProxyScheme, m, k({})), { cls: 'E', steps: [1, 2, 3, 5, 6, 8] });
  // 1 → 2 → 3 → 9: X a consumer, but not the immediately next one.
  assert.deepEqual(escalate(N.ProxyScheme, m, k({ xIsNextConsumer: false })), { cls: 'U', steps: [1, 2, 3, 9] });
  // 1 → 2 → 3 → 5 → 9: X needs it to remove the layer.
  assert.deepEqual(escalate(N.ProxyScheme, m, k({ xNeedsBeforeDecrypt: true })), { cls: 'U', steps: [1, 2, 3, 5, 9] });
  // 1 → 2 → 4 → 6 → 8: added, X no consumer, X the next hop.
  assert.deepEqual(escalate(N.ProxyScheme, m, k({ xIsConsumer: false, xIsNextConsumer: false })), { cls: 'E', steps: [1, 2, 4, 6, 8] });
  // 1 → 4 → 9: not added, X not the next hop, the next hop the next consumer.
  assert.deepEqual(escalate(N.ProxyScheme, m, k({ added: false, xIsNextHop: false })), { cls: 'U', steps: [1, 4, 9] });
  // 1 → 4 → 6 → 8: not added, the next hop is not the next consumer.
  assert.deepEqual(escalate(N.ProxyScheme, m, k({ added: false, xIsNextHop: false, nextHopIsNextConsumer: false })), { cls: 'E', steps: [1, 4, 6, 8] });
  // 6 → 7 → 8: Uri-Host with Proxy-Scheme; 6 → 7 → 9 without.
  assert.deepEqual(escalate(N.UriHost, m, k({})), { cls: 'E', steps: [1, 2, 3, 5, 6, 7, 8] });
  assert.deepEqual(escalate(N.UriHost, message(HOST), k({})), { cls: 'U', steps: [1, 2, 3, 5, 6, 7, 9] });
  assert.deepEqual(escalate(N.UriPort, message(PORT, PS), k({})).cls, 'E');
  assert.deepEqual(escalate(N.UriPort, message(PORT), k({})).cls, 'U');
});

test('Appendix B.1 client: end-to-end layer keeps proxy-related options outer, the C–P layer encrypts them', () => {
  const consumers = pathConsumers(['forward-proxy', 'origin']);
  const m = message(HOST, HOP, PS);
  const e2e = escalatingClassOf({ x: 2, consumers }); // X = the origin, two hops away
  const cp = escalatingClassOf({ x: 1, consumers }); // X = the proxy, the next hop
  for (const n of [N.UriHost, N.ProxyScheme, N.HopLimit]) {
    assert.equal(e2e(n, m), 'U', `end to end: ${n} stays for the proxy (Hop-Limit: §3)`);
    assert.equal(cp(n, m), 'E', `C–P layer: ${n} encrypted for the proxy`);
  }
  const proxyUri = message({ number: N.ProxyUri, value: encodeString('coap://example.com/x') });
  assert.equal(e2e(N.ProxyUri, proxyUri), 'U');
  assert.equal(cp(N.ProxyUri, proxyUri), 'E');
  assert.equal(e2e(N.Oscore, m), 'E', 'an inner OSCORE option is always encrypted by the next layer');
});

test('Appendix B.2/B.3 proxy: its own Uri-Host for the server stays outer; B.6 P1: the kept proxy options are encrypted for P2', () => {
  const added = new Set<number>([N.UriHost, N.UriPort, N.HopLimit]);
  const toOrigin = escalatingClassOf({ x: 1, consumers: pathConsumers(['origin']), added: (n) => added.has(n) });
  const m = message(HOST, HOP);
  assert.equal(toOrigin(N.UriHost, m), 'U', 'steps 1,2,3,5,6,7,9');
  assert.equal(toOrigin(N.HopLimit, m), 'E', 'the origin consumes no Hop-Limit: steps 1,2,4,6,8');
  const toNextProxy = escalatingClassOf({ x: 1, consumers: pathConsumers(['forward-proxy', 'origin']), added: (n) => n === N.HopLimit });
  const kept = message(HOST, HOP, PS);
  for (const n of [N.UriHost, N.ProxyScheme, N.HopLimit]) assert.equal(toNextProxy(n, kept), 'E', String(n));
});

test('a protecting proxy must recognise every option (§2.2)', () => {
  const strict = escalatingClassOf({ x: 1, consumers: () => [], strict: true });
  assert.throws(() => strict(65000, message()), UnrecognizedOptionError);
  const lenient = escalatingClassOf({ x: 1, consumers: () => [] });
  assert.equal(lenient(65000, message()), 'E', 'an origin client: unknown options are Class E (RFC 8613 §4.1)');
});
