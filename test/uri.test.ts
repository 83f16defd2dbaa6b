import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  defaultPort,
  formatCoapUri,
  optionsToUri,
  parseAbsoluteUri,
  parseCoapUri,
  uriToOptions,
  UriError,
  type CoapUri,
} from '../src/coap/uri.js';
import { encodeMessage } from '../src/coap/codec.js';
import { createMessage, decodeUint, encodeString, encodeUint, type CoapOption } from '../src/coap/message.js';
import { Method } from '../src/coap/codes.js';
import { OptionNumber } from '../src/coap/options.js';
import { normalizeIpAddress } from '../src/coap/ip-address.js';

const { UriHost, UriPort, UriPath, UriQuery } = OptionNumber;

/** Options as [number, text] pairs (Uri-Port as its number) for readable comparisons. */
function readable(options: readonly CoapOption[]): Array<[number, string | number]> {
  return options.map((o) => [o.number, o.number === UriPort ? decodeUint(o.value) : Buffer.from(o.value).toString()]);
}

const option = (number: number, value: string | Uint8Array): CoapOption => ({
  number,
  value: typeof value === 'string' ? encodeString(value) : value,
});

function assertUriError(text: string, pattern: RegExp): void {
  assert.throws(() => parseCoapUri(text), (e: unknown) => {
    assert.ok(e instanceof UriError, `expected UriError for ${text}, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

// --- parsing (§6.1, §6.2, §6.4) ---------------------------------------------------------------

test('IPv6 literal with port, encoded path and query', () => {
  assert.deepEqual(parseCoapUri('coap://[::1]:61616/a%20b?x=1'), {
    scheme: 'coap',
    host: '::1',
    port: 61616,
    explicitPort: true,
    path: ['a b'],
    query: ['x=1'],
  });
});

test('default ports: 5683 for coap, 5684 for coaps; an empty port is no port (§6.1, §6.2)', () => {
  assert.deepEqual(parseCoapUri('coap://example.com'), {
    scheme: 'coap', host: 'example.com', port: 5683, explicitPort: false, path: [], query: [],
  });
  assert.equal(parseCoapUri('coaps://example.com/').port, 5684);
  assert.equal(parseCoapUri('coaps://example.com:/').explicitPort, false);
  assert.equal(parseCoapUri('coaps://example.com:/').port, 5684);
  const explicit = parseCoapUri('coap://example.com:5683/');
  assert.equal(explicit.port, 5683);
  assert.equal(explicit.explicitPort, true);
  assert.equal(parseCoapUri('coap://h:0/').port, 0);
  assert.equal(parseCoapUri('coap://h:65535/').port, 65535);
  assert.equal(defaultPort('COAPS'), 5684);
});

test('scheme and reg-name are case-insensitive; IPv4 and IPv6 literals are normalized', () => {
  const uri = parseCoapUri('CoAPs://EXAMPLE.Com/Path');
  assert.equal(uri.scheme, 'coaps');
  assert.equal(uri.host, 'example.com');
  assert.deepEqual(uri.path, ['Path'], 'the path stays case-sensitive (§6.3)');
  assert.equal(parseCoapUri('coap://192.0.2.1/').host, '192.0.2.1');
  assert.equal(parseCoapUri('coap://[2001:DB8:0:0:0:0:2:1]/').host, '2001:db8::2:1');
  assert.equal(parseCoapUri('coap://[::FFFF:192.0.2.1]/').host, '::ffff:192.0.2.1');
  assert.equal(parseCoapUri('coap://[fe80::1%25eth0]/').host, 'fe80::1%eth0');
  assert.equal(parseCoapUri('coap://%C3%A9x%41mple.org/').host, 'éxample.org');
});

test('§6.3: the three equivalent URIs give the same options', () => {
  const expected = uriToOptions('coap://example.com:5683/~sensors/temp.xml');
  assert.deepEqual(readable(expected), [
    [UriHost, 'example.com'],
    [UriPath, '~sensors'],
    [UriPath, 'temp.xml'],
  ]);
  assert.deepEqual(uriToOptions('coap://EXAMPLE.com/%7Esensors/temp.xml'), expected);
  assert.deepEqual(uriToOptions('coap://EXAMPLE.com:/%7esensors/temp.xml'), expected);
});

test('path "/" or empty means no Uri-Path; other paths keep empty segments (§6.4 step 8)', () => {
  assert.deepEqual(parseCoapUri('coap://h').path, []);
  assert.deepEqual(parseCoapUri('coap://h/').path, []);
  assert.deepEqual(parseCoapUri('coap://h?q').path, []);
  assert.deepEqual(parseCoapUri('coap://h/a/').path, ['a', '']);
  assert.deepEqual(parseCoapUri('coap://h//').path, ['', '']);
  assert.deepEqual(parseCoapUri('coap://h/a%2Fb/c').path, ['a/b', 'c'], 'an encoded slash stays inside its segment');
});

test('dot-segments are resolved before decomposing (§6.4 step 2), encoded dots included', () => {
  assert.deepEqual(parseCoapUri('coap://h/a/b/../c/./d').path, ['a', 'c', 'd']);
  assert.deepEqual(parseCoapUri('coap://h/a/b/..').path, ['a', '']);
  assert.deepEqual(parseCoapUri('coap://h/a/.').path, ['a', '']);
  assert.deepEqual(parseCoapUri('coap://h/../../x').path, ['x']);
  assert.deepEqual(parseCoapUri('coap://h/a/..').path, []);
  assert.deepEqual(parseCoapUri('coap://h/a/%2E%2E/b').path, ['b']);
  assert.deepEqual(parseCoapUri('coap://h/a/%2e/b').path, ['a', 'b']);
  assert.deepEqual(parseCoapUri('coap://h/.well-known/core').path, ['.well-known', 'core']);
});

test('query arguments are split on "&" and decoded one by one (§6.4 step 9)', () => {
  assert.deepEqual(parseCoapUri('coap://h/p?a=1&b&c=x%26y').query, ['a=1', 'b', 'c=x&y']);
  assert.deepEqual(parseCoapUri('coap://h/p?a=/?b').query, ['a=/?b']);
  assert.deepEqual(parseCoapUri('coap://h/p?').query, [''], 'an empty query is one empty argument');
  assert.deepEqual(parseCoapUri('coap://h/p?a&&b').query, ['a', '', 'b']);
  assert.deepEqual(parseCoapUri('coap://h/p').query, []);
});

test('fragments are rejected (§6.4 step 4)', () => {
  assertUriError('coap://h/p#frag', /fragment/);
  assertUriError('coap://h/#', /fragment/);
});

test('schemes other than the CoAP ones, and relative references, are rejected (§6.4 steps 1, 3)', () => {
  assertUriError('http://h/p', /unsupported URI scheme "http"/);
  assertUriError('coap+sms://h/p', /unsupported URI scheme "coap\+sms"/);
  assertUriError('/sensors/temp', /not an absolute URI/);
  assertUriError('h/sensors', /not an absolute URI/);
  assertUriError('coap:/sensors', /no authority/);
  assertUriError('coap:sensors', /no authority/);
});

test('RFC 8323 §8: coap+tcp, coaps+tcp, coap+ws and coaps+ws parse, with their default ports', () => {
  for (const [uri, port] of [['coap+tcp://h/a', 5683], ['coaps+tcp://h/a', 5684], ['coap+ws://h/a', 80], ['coaps+ws://h/a', 443]] as const) {
    const parsed = parseCoapUri(uri);
    assert.equal(parsed.scheme, uri.slice(0, uri.indexOf(':')));
    assert.equal(parsed.port, port);
    assert.equal(parsed.explicitPort, false);
    assert.deepEqual(parsed.path, ['a']);
  }
  assert.equal(parseCoapUri('coap+ws://h:8080/.well-known/core').port, 8080);
});

test('missing or malformed hosts are rejected (§6.1)', () => {
  assertUriError('coap:///path', /host is empty/);
  assertUriError('coap://:5683/', /host is empty/);
  assertUriError('coap://user@h/', /userinfo/);
  assertUriError('coap://[::1/', /unterminated IP literal/);
  assertUriError('coap://[::g]/', /invalid IPv6/);
  assertUriError('coap://[192.0.2.1]/', /invalid IPv6/);
  assertUriError('coap://[v1.x]/', /IPvFuture/);
  assertUriError('coap://[::1]x/', /after IP literal/);
  assertUriError('coap://[fe80::1%eth0]/', /zone/);
  assertUriError('coap://a<b/', /not allowed in the host/);
});

test('bad ports are rejected', () => {
  assertUriError('coap://h:65536/', /port 65536 is out of range/);
  assertUriError('coap://h:99999999999999999999/', /out of range/);
  assertUriError('coap://h:-1/', /invalid port "-1"/);
  assertUriError('coap://h:http/', /invalid port "http"/);
  assertUriError('coap://h:56 83/', /not allowed/);
});

test('invalid percent-encodings and characters are rejected', () => {
  assertUriError('coap://h/a%', /invalid percent-encoding "%" in path/);
  assertUriError('coap://h/a%2', /invalid percent-encoding "%2" in path/);
  assertUriError('coap://h/a%G0', /invalid percent-encoding "%G0" in path/);
  assertUriError('coap://h/p?x=%zz', /invalid percent-encoding "%zz" in query/);
  assertUriError('coap://h/%FF', /not valid UTF-8/);
  assertUriError('coap://h/a b', /" " at offset 10/);
  assertUriError('coap://h/ü', /not allowed/);
  assertUriError('coap://h/a[1]', /not allowed in the path/);
  assertUriError('coap://h/p?a{b}', /not allowed in the query/);
});

// --- decomposing into options (§6.4 steps 5-9) ---------------------------------------------------

test('uriToOptions: Uri-Port and Uri-Path, no Uri-Host for an IP literal without a destination', () => {
  const options = uriToOptions('coap://[::1]:61616/a%20b?x=1');
  assert.deepEqual(options, [
    option(UriPort, Uint8Array.of(0xf0, 0xb0)),
    option(UriPath, 'a b'),
    option(UriQuery, 'x=1'),
  ]);
});

test('uriToOptions: Uri-Host is omitted only when the host is the destination address (§6.4 step 5)', () => {
  const uri = parseCoapUri('coap://[2001:db8::1]/x');
  assert.deepEqual(readable(uriToOptions(uri, '2001:db8::1')), [[UriPath, 'x']]);
  assert.deepEqual(readable(uriToOptions(uri, '2001:DB8:0:0:0:0:0:1')), [[UriPath, 'x']], 'compared as addresses, not text');
  assert.deepEqual(readable(uriToOptions(uri, '2001:db8::2')), [[UriHost, '[2001:db8::1]'], [UriPath, 'x']]);
  assert.deepEqual(readable(uriToOptions('coap://192.0.2.1/', '::ffff:192.0.2.1')), [], 'IPv4-mapped destination');
  assert.deepEqual(readable(uriToOptions('coap://192.0.2.1/', '192.0.2.2')), [[UriHost, '192.0.2.1']]);
  assert.deepEqual(readable(uriToOptions('coap://[fe80::1%25eth0]/', 'fe80::1%eth0')), []);
  assert.deepEqual(readable(uriToOptions('coap://[fe80::1%25eth0]/', 'fe80::2')), [[UriHost, '[fe80::1]']], 'no zone on the wire');
  // A reg-name never "is" an IP address, with or without a destination.
  assert.deepEqual(readable(uriToOptions('coap://Example.NET/')), [[UriHost, 'example.net']]);
  assert.deepEqual(readable(uriToOptions('coap://example.net/', '2001:db8::1')), [[UriHost, 'example.net']]);
});

test('uriToOptions: Uri-Port is omitted for the default port, or for the destination port when given (§6.4 step 7)', () => {
  assert.deepEqual(readable(uriToOptions('coap://[::1]:5683/')), []);
  assert.deepEqual(readable(uriToOptions('coaps://[::1]:5684/')), []);
  assert.deepEqual(readable(uriToOptions('coaps://[::1]:5683/')), [[UriPort, 5683]]);
  assert.deepEqual(readable(uriToOptions('coap://[::1]:61616/')), [[UriPort, 61616]]);
  assert.deepEqual(readable(uriToOptions('coap://[::1]:61616/', '::1', 61616)), []);
  assert.deepEqual(readable(uriToOptions('coap://[::1]/', '::1', 61616)), [[UriPort, 5683]]);
  assert.deepEqual(uriToOptions('coap://[::1]:0/'), [option(UriPort, new Uint8Array(0))], 'uint 0 is the empty value');
});

test('uriToOptions: one option per segment and argument, sorted by number', () => {
  const options = uriToOptions('coap://example.com:1234/a//b/?x&y=%2F');
  assert.deepEqual(readable(options), [
    [UriHost, 'example.com'],
    [UriPort, 1234],
    [UriPath, 'a'],
    [UriPath, ''],
    [UriPath, 'b'],
    [UriPath, ''],
    [UriQuery, 'x'],
    [UriQuery, 'y=/'],
  ]);
});

test('uriToOptions gives the request of RFC 7252 Figure 16 byte for byte', () => {
  const request = createMessage({
    code: Method.GET,
    messageId: 0x7d34,
    options: uriToOptions('coap://[2001:db8::1]/temperature', '2001:db8::1'),
  });
  assert.equal(Buffer.from(encodeMessage(request)).toString('hex'), `40017d34bb${Buffer.from('temperature').toString('hex')}`);
});

test('uriToOptions refuses values that do not fit their option, and dot segments', () => {
  assert.throws(() => uriToOptions(`coap://h/${'a'.repeat(256)}`), (e) => e instanceof UriError && /Uri-Path value of 256 bytes/.test(e.message));
  assert.doesNotThrow(() => uriToOptions(`coap://h/${'a'.repeat(255)}`));
  assert.throws(() => uriToOptions(`coap://h/p?${'q'.repeat(256)}`), /Uri-Query/);
  assert.throws(() => uriToOptions(`coap://${'h'.repeat(256)}/`), /Uri-Host/);
  const dotted: CoapUri = { scheme: 'coap', host: 'h', port: 5683, explicitPort: false, path: ['..'], query: [] };
  assert.throws(() => uriToOptions(dotted), /must not be "\." or "\.\."/);
});

// --- composing from options (§6.5, Appendix B) -------------------------------------------------------

const appendixBDestination = { scheme: 'coap' as const, host: '2001:db8::2:1', port: 5683 };

test('Appendix B: no options gives the destination address', () => {
  assert.equal(optionsToUri([], appendixBDestination), 'coap://[2001:db8::2:1]/');
});

test('Appendix B: Uri-Host replaces the destination address', () => {
  assert.equal(optionsToUri([option(UriHost, 'example.net')], appendixBDestination), 'coap://example.net/');
});

test('Appendix B: Uri-Host and two Uri-Path options', () => {
  const options = [option(UriHost, 'example.net'), option(UriPath, '.well-known'), option(UriPath, 'core')];
  assert.equal(optionsToUri(options, appendixBDestination), 'coap://example.net/.well-known/core');
});

test('Appendix B: a non-ASCII Uri-Path is percent-encoded as UTF-8 with uppercase hex', () => {
  const options = [option(UriHost, 'xn--18j4d.example'), option(UriPath, '\u3053\u3093\u306b\u3061\u306f')];
  assert.equal(optionsToUri(options, appendixBDestination), 'coap://xn--18j4d.example/%E3%81%93%E3%82%93%E3%81%AB%E3%81%A1%E3%81%AF');
});

test('Appendix B: empty segments, slashes and "&" in values, port 61616', () => {
  const options = [
    option(UriPath, ''),
    option(UriPath, '/'),
    option(UriPath, ''),
    option(UriPath, ''),
    option(UriQuery, '//'),
    option(UriQuery, '?&'),
  ];
  // The RFC prints "?%2F%2F&?%26", but §6.5 step 8 lists "/" among the characters a query
  // argument keeps unescaped, and step 8 is normative; this follows step 8.
  assert.equal(
    optionsToUri(options, { scheme: 'coap', host: '198.51.100.1', port: 61616 }),
    'coap://198.51.100.1:61616//%2F//?//&?%26',
  );
});

test('optionsToUri: Uri-Port, scheme default ports and the DTLS scheme (§6.5 steps 1, 4, 5)', () => {
  const host = option(UriHost, 'example.net');
  assert.equal(optionsToUri([host, option(UriPort, encodeUint(5683))], appendixBDestination), 'coap://example.net/');
  assert.equal(optionsToUri([host, option(UriPort, encodeUint(5684))], appendixBDestination), 'coap://example.net:5684/');
  assert.equal(optionsToUri([host], { scheme: 'coaps', host: '::1', port: 5684 }), 'coaps://example.net/');
  assert.equal(optionsToUri([host], { scheme: 'coaps', host: '::1', port: 5683 }), 'coaps://example.net:5683/');
  assert.equal(optionsToUri([], { scheme: 'coap', host: '192.0.2.1', port: 40000 }), 'coap://192.0.2.1:40000/');
  assert.throws(() => optionsToUri([option(UriPort, Uint8Array.of(1, 0, 0))], appendixBDestination), /Uri-Port/);
});

test('optionsToUri: IP-literal Uri-Host values, bracketed or not, and hosts needing encoding', () => {
  assert.equal(optionsToUri([option(UriHost, '[2001:DB8::1]')], appendixBDestination), 'coap://[2001:db8::1]/');
  assert.equal(optionsToUri([option(UriHost, '2001:db8::1')], appendixBDestination), 'coap://[2001:db8::1]/');
  assert.equal(optionsToUri([option(UriHost, '192.0.2.1')], appendixBDestination), 'coap://192.0.2.1/');
  assert.equal(optionsToUri([option(UriHost, 'Ex Ample/é')], appendixBDestination), 'coap://ex%20ample%2F%C3%A9/');
  assert.throws(() => optionsToUri([option(UriHost, '')], appendixBDestination), /empty Uri-Host/);
});

test('optionsToUri: option order across numbers does not matter; "." and ".." Uri-Path are refused', () => {
  const shuffled = [option(UriQuery, 'a=1'), option(UriPath, 'x'), option(UriHost, 'h'), option(UriPath, 'y')];
  assert.equal(optionsToUri(shuffled, appendixBDestination), 'coap://h/x/y?a=1');
  assert.throws(() => optionsToUri([option(UriPath, '..')], appendixBDestination), UriError);
  assert.throws(() => optionsToUri([option(UriPath, '.')], appendixBDestination), UriError);
});

test('optionsToUri encodes bytes, so a non-UTF-8 Uri-Path still gives a well-formed URI', () => {
  assert.equal(optionsToUri([option(UriPath, Uint8Array.of(0x61, 0xff))], appendixBDestination), 'coap://[2001:db8::2:1]/a%FF');
});

// --- formatting and round trips ----------------------------------------------------------------------

test('formatCoapUri writes the normal form (§6.3) and keeps an explicit port', () => {
  assert.equal(formatCoapUri(parseCoapUri('COAP://EXAMPLE.com:/%7esensors/temp.xml')), 'coap://example.com/~sensors/temp.xml');
  assert.equal(formatCoapUri(parseCoapUri('coap://example.com')), 'coap://example.com/');
  assert.equal(formatCoapUri(parseCoapUri('coap://example.com:5683/')), 'coap://example.com:5683/');
  assert.equal(formatCoapUri(parseCoapUri('coap://[0:0::1]:61616/a%20b?x=1')), 'coap://[::1]:61616/a%20b?x=1');
  assert.equal(formatCoapUri(parseCoapUri('coap://[fe80::1%25eth0]/')), 'coap://[fe80::1%25eth0]/');
  assert.equal(formatCoapUri(parseCoapUri('coap://h/a%2fb?c%3Dd&e%26f')), 'coap://h/a%2Fb?c=d&e%26f');
  assert.equal(
    formatCoapUri({ scheme: 'coaps', host: 'h', port: 61616, explicitPort: false, path: ['sp ace'], query: [] }),
    'coaps://h:61616/sp%20ace',
    'a non-default port is written even when not marked explicit',
  );
  assert.throws(() => formatCoapUri({ scheme: 'coap', host: '', port: 5683, explicitPort: false, path: [], query: [] }), /host is empty/);
  assert.throws(() => formatCoapUri({ scheme: 'coap', host: 'h', port: 70000, explicitPort: true, path: [], query: [] }), /out of range/);
  assert.throws(() => formatCoapUri({ scheme: 'coap', host: 'h', port: 1, explicitPort: true, path: ['\ud800'], query: [] }), /well-formed/);
});

const pieceArb = fc.oneof(
  fc.constantFrom('/', '?', '&', '%', '#', '=', ' ', '.', ':', '@', '[', ']', '+', '~', '%41', 'é', '😀'),
  fc.string({ unit: 'binary', maxLength: 3 }),
);
const textArb = fc.array(pieceArb, { maxLength: 5 }).map((pieces) => pieces.join(''));
const segmentArb = textArb.filter((s) => s !== '.' && s !== '..');
const asciiLower = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
const hostArb = fc.oneof(
  fc.ipV4(),
  fc.ipV6().map((a) => normalizeIpAddress(a)!),
  fc.domain(),
  textArb.map(asciiLower).filter((h) => h !== '' && normalizeIpAddress(h) === undefined),
);
const coapUriArb: fc.Arbitrary<CoapUri> = fc
  .record({
    scheme: fc.constantFrom('coap' as const, 'coaps' as const),
    host: hostArb,
    port: fc.oneof(fc.constantFrom(5683, 5684), fc.integer({ min: 0, max: 65535 })),
    explicitPort: fc.boolean(),
    path: fc.array(segmentArb, { maxLength: 4 }).filter((p) => !(p.length === 1 && p[0] === '')),
    query: fc.array(textArb, { maxLength: 3 }),
  })
  // A non-default port is always written, so it always parses back as explicit.
  .map((u) => ({ ...u, explicitPort: u.explicitPort || u.port !== defaultPort(u.scheme) }));

test('parseCoapUri(formatCoapUri(u)) gives back u', () => {
  fc.assert(
    fc.property(coapUriArb, (uri) => {
      assert.deepEqual(parseCoapUri(formatCoapUri(uri)), uri);
    }),
    { numRuns: 3000 },
  );
});

test('options from a URI compose back to the same URI in normal form (§6.4 then §6.5)', () => {
  fc.assert(
    fc.property(coapUriArb, (uri) => {
      const options = uriToOptions(uri);
      const composed = optionsToUri(options, { scheme: uri.scheme, host: uri.host, port: uri.port });
      assert.deepEqual(parseCoapUri(composed), { ...uri, explicitPort: uri.port !== defaultPort(uri.scheme) });
    }),
    { numRuns: 3000 },
  );
});

// --- Proxy-Uri ---------------------------------------------------------------------------------------

test('parseAbsoluteUri handles any scheme with an authority, with known default ports', () => {
  assert.deepEqual(parseAbsoluteUri('HTTP://Example.org/a/b?x=1&y'), {
    scheme: 'http', host: 'example.org', port: 80, explicitPort: false, path: ['a', 'b'], query: ['x=1', 'y'],
  });
  assert.equal(parseAbsoluteUri('https://example.org/').port, 443);
  assert.equal(parseAbsoluteUri('https://example.org:8443/').port, 8443);
  assert.equal(parseAbsoluteUri('coap+tcp://[::1]/').port, 5683);
  assert.equal(parseAbsoluteUri('coaps+ws://h/').port, 443);
  assert.equal(parseAbsoluteUri('coap://h/').port, 5683);
  const unknown = parseAbsoluteUri('foo://h/p');
  assert.equal(unknown.port, undefined);
  assert.equal(unknown.explicitPort, false);
  assert.throws(() => parseAbsoluteUri('http://h/p#top'), /fragment/);
  assert.throws(() => parseAbsoluteUri('mailto:someone@example.org'), /no authority/);
  assert.throws(() => parseAbsoluteUri('//h/p'), /not an absolute URI/);
});
