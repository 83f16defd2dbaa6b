import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import { formatIpv6, isIpv4, normalizeIpAddress, parseIpAddress, parseIpv6, sameIpAddress } from '../src/coap/ip-address.js';

test('RFC 5952 §4 canonical IPv6 text', () => {
  const cases: Array<[string, string]> = [
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'], // §4.1 leading zeros, §4.2.1 "::"
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // §4.2.2 no "::" for one zero group
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // §4.2.3 equal runs: the first
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // §4.2.3 the longest run
    ['2001:DB8::AB', '2001:db8::ab'], // §4.3 lower case
    ['0:0:0:0:0:0:0:0', '::'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['::ffff:c000:0201', '::ffff:192.0.2.1'], // §5 IPv4-mapped keeps the dotted quad
  ];
  for (const [input, expected] of cases) assert.equal(normalizeIpAddress(input), expected, input);
});

test('malformed addresses are not IP literals', () => {
  for (const bad of ['', ':', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', '::g', ':1::', '1.2.3.4::', '1:2:3:4:5:6:7::8', 'fe80::1%']) {
    assert.equal(parseIpAddress(bad), undefined, bad);
  }
  assert.equal(isIpv4('192.0.2.1'), true);
  for (const bad of ['01.2.3.4', '256.1.1.1', '1.2.3', '1.2.3.4.5', '1.2.3.-4']) assert.equal(isIpv4(bad), false, bad);
});

test('brackets and zones', () => {
  assert.deepEqual(parseIpAddress('[2001:DB8::1]'), { version: 6, address: '2001:db8::1' });
  assert.deepEqual(parseIpAddress('fe80::1%eth0'), { version: 6, address: 'fe80::1', zone: 'eth0' });
  assert.equal(normalizeIpAddress('FE80:0::1%eth0'), 'fe80::1%eth0');
  assert.equal(normalizeIpAddress('example.com'), undefined);
});

test('sameIpAddress compares addresses, treating IPv4-mapped IPv6 as IPv4 and ignoring zones', () => {
  assert.equal(sameIpAddress('::1', '0:0:0:0:0:0:0:1'), true);
  assert.equal(sameIpAddress('[::1]', '::1'), true);
  assert.equal(sameIpAddress('::ffff:192.0.2.1', '192.0.2.1'), true);
  assert.equal(sameIpAddress('fe80::1%eth0', 'fe80::1%eth1'), true);
  assert.equal(sameIpAddress('::1', '::2'), false);
  assert.equal(sameIpAddress('192.0.2.1', '192.0.2.2'), false);
  assert.equal(sameIpAddress('localhost', 'localhost'), false, 'names are not addresses');
});

test('every address Node accepts parses, and its canonical form is valid and stable', () => {
  fc.assert(
    fc.property(fc.ipV6(), (address) => {
      assert.ok(isIPv6(address));
      const groups = parseIpv6(address);
      assert.ok(groups !== undefined, address);
      const canonical = formatIpv6(groups);
      assert.ok(isIPv6(canonical), canonical);
      assert.deepEqual(parseIpv6(canonical), groups);
      assert.equal(normalizeIpAddress(canonical), canonical);
    }),
    { numRuns: 3000 },
  );
});
