/** The target of a proxied request (PR1.1/PR1.2) and the memo of recent targets (src/proxy/request-target.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResponseCode } from '../src/coap/codes.js';
import { EMPTY_BYTES, MessageType, encodeString, encodeUint, type CoapMessage, type CoapOption } from '../src/coap/message.js';
import { OptionNumber } from '../src/coap/options.js';
import { TargetMemo, targetOf, type Target, type TargetError } from '../src/proxy/request-target.js';

/** The target, failing the test on an error. */
function ok(t: Target | TargetError): Target {
  if ('error' in t) assert.fail(t.error);
  return t;
}

const str = (number: number, value: string): CoapOption => ({ number, value: encodeString(value) });

function request(options: CoapOption[]): CoapMessage {
  return { type: MessageType.CON, code: 1, messageId: 1, token: EMPTY_BYTES, options: [...options].sort((a, b) => a.number - b.number), payload: EMPTY_BYTES };
}

const schemeForm = (host: string, port: number | undefined, path: string[], query: string[] = [], scheme = 'coap') =>
  request([
    str(OptionNumber.ProxyScheme, scheme),
    str(OptionNumber.UriHost, host),
    ...(port === undefined ? [] : [{ number: OptionNumber.UriPort, value: encodeUint(port) }]),
    ...path.map((s) => str(OptionNumber.UriPath, s)),
    ...query.map((q) => str(OptionNumber.UriQuery, q)),
  ]);

const REQUESTS = [
  schemeForm('127.0.0.1', 47361, ['bench']),
  schemeForm('127.0.0.1', 47362, ['bench']),
  schemeForm('127.0.0.1', 47361, ['Bench']),
  schemeForm('127.0.0.1', 47361, ['be', 'nch']),
  schemeForm('127.0.0.1', 47361, ['bench'], ['a=1']),
  schemeForm('127.0.0.1', 47361, ['bench'], ['a=1', 'b']),
  schemeForm('[2001:db8::1]', undefined, ['x y']),
  schemeForm('example.com', undefined, [], [], 'coaps'),
  request([str(OptionNumber.ProxyUri, 'coap://127.0.0.1:47361/bench')]),
  request([str(OptionNumber.ProxyUri, 'coap://127.0.0.1/bench?a=1')]),
  request([str(OptionNumber.ProxyUri, 'http://example.com/index.html')]),
  // Options that do not name the target do not change it.
  request([str(OptionNumber.ProxyUri, 'coap://127.0.0.1:47361/bench'), { number: OptionNumber.Accept, value: encodeUint(50) }]),
];

test('PR1.1/PR1.2: targets from Proxy-Uri and from Proxy-Scheme with Uri-*', () => {
  assert.deepEqual(targetOf(REQUESTS[0]!), { uri: 'coap://127.0.0.1:47361/bench', scheme: 'coap', host: '127.0.0.1', port: 47361 });
  assert.deepEqual(targetOf(REQUESTS[6]!), { uri: 'coap://[2001:db8::1]:5683/x%20y', scheme: 'coap', host: '2001:db8::1', port: 5683 });
  assert.deepEqual(targetOf(REQUESTS[7]!), { uri: 'coaps://example.com:5684/', scheme: 'coaps', host: 'example.com', port: 5684 });
  assert.equal(ok(targetOf(REQUESTS[8]!)).uri, ok(targetOf(REQUESTS[0]!)).uri, 'both forms name the same target alike');
  assert.deepEqual(targetOf(request([str(OptionNumber.ProxyScheme, 'coap')])), { error: 'Proxy-Scheme needs Uri-Host to name the target', code: ResponseCode.BadRequest });
  assert.equal((targetOf(request([str(OptionNumber.ProxyUri, 'no scheme')])) as { code: number }).code, ResponseCode.BadOption);
});

test('TargetMemo gives what targetOf computes, for every request, in any order and repeatedly', () => {
  const memo = new TargetMemo();
  for (let round = 0; round < 3; round++) {
    for (const r of round === 1 ? [...REQUESTS].reverse() : REQUESTS) assert.deepEqual(memo.resolve(r), targetOf(r));
  }
  // Each distinct naming is its own entry: none answered for another.
  const uris = new Set(REQUESTS.slice(0, 8).map((r) => ok(memo.resolve(r)).uri));
  assert.equal(uris.size, 8);
});

test('TargetMemo compares the bytes themselves: a request whose option bytes changed gets its own target', () => {
  const memo = new TargetMemo();
  const r = schemeForm('127.0.0.1', 47361, ['bench']);
  assert.equal(ok(memo.resolve(r)).uri, 'coap://127.0.0.1:47361/bench');
  // The same buffers, rewritten in place (same lengths): the memo kept a copy, not the views.
  const path = r.options.find((o) => o.number === OptionNumber.UriPath)!.value;
  path.set(encodeString('bunch'));
  assert.equal(ok(memo.resolve(r)).uri, 'coap://127.0.0.1:47361/bunch');
  // An option split differently (the same bytes in total) is another target.
  assert.equal(ok(memo.resolve(schemeForm('127.0.0.1', 47361, ['bu', 'nch']))).uri, 'coap://127.0.0.1:47361/bu/nch');
});

test('TargetMemo does not remember errors, nor more targets than its capacity', () => {
  const memo = new TargetMemo(4);
  const bad = request([str(OptionNumber.ProxyScheme, 'coap')]);
  assert.ok('error' in memo.resolve(bad));
  assert.ok('error' in memo.resolve(bad));
  for (let port = 1; port <= 20; port++) {
    const r = schemeForm('10.0.0.1', port, ['p']);
    assert.equal(ok(memo.resolve(r)).port, port);
    assert.equal(ok(memo.resolve(r)).port, port);
  }
  // A Proxy-Uri longer than any valid one is resolved, not remembered (its memory is not bounded).
  const long = request([str(OptionNumber.ProxyUri, `coap://10.0.0.1/${'a'.repeat(1200)}`)]);
  assert.deepEqual(memo.resolve(long), targetOf(long));
});
