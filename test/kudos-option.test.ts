/** The OSCORE option extended by KUDOS (draft-ietf-core-oscore-key-update §4.1, Figure 1). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MalformedOscoreOption, decodeOscoreOption, encodeOscoreOption } from '../src/oscore/index.js';

const h = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('Figure 1 layout: flags 1 | flags 2 (d) | Partial IV | s | kid context | x | nonce | kid', () => {
  const value = encodeOscoreOption({ piv: h('05'), kidContext: h('aabb'), kid: h('01'), kudos: { x: 0x07, nonce: h('0001020304050607') } });
  // 0x80 Extension-1 | h 0x10 | k 0x08 | n = 1; second byte d = 0x01.
  assert.equal(hex(value), '99' + '01' + '05' + '02aabb' + '07' + '0001020304050607' + '01');
  const decoded = decodeOscoreOption(value);
  assert.deepEqual({ piv: hex(decoded.piv!), kidContext: hex(decoded.kidContext!), kid: hex(decoded.kid!), x: decoded.kudos!.x, nonce: hex(decoded.kudos!.nonce) }, {
    piv: '05', kidContext: 'aabb', kid: '01', x: 7, nonce: '0001020304050607',
  });
});

test('a convergent response: only the Partial IV and the KUDOS fields', () => {
  const value = encodeOscoreOption({ piv: h('00'), kudos: { x: 0x40, nonce: h('ee') } });
  assert.equal(hex(value), '81' + '01' + '00' + '40' + 'ee');
  assert.deepEqual(decodeOscoreOption(value).kudos, { x: 0x40, nonce: h('ee') });
  // Without any other field the extension alone still makes a non-empty value.
  assert.equal(hex(encodeOscoreOption({ kudos: { x: 0x00, nonce: h('ab') } })), '800100ab');
});

test('non-KUDOS values are unchanged (no second flag byte)', () => {
  assert.equal(hex(encodeOscoreOption({ piv: h('14'), kid: h('') })), '0914');
  assert.equal(decodeOscoreOption(h('0914')).kudos, undefined);
  // A second flag byte without 'd' is well formed and not a KUDOS message (§4.1).
  assert.equal(decodeOscoreOption(h('8900 14')).kudos, undefined);
});

const MALFORMED: [string, string, RegExp][] = [
  ['80', 'Extension-1 without a second byte', /no second flag byte/],
  ['8180 00', 'Extension-2 (bit 8): a third flag byte we cannot parse', /reserved OSCORE flag bits set in the second flag byte/],
  ['8102 00', 'unassigned bit 14', /second flag byte/],
  ['8140 00', 'unassigned bit 9', /second flag byte/],
  ['8101 00', "'d' without 'x'", /no 'x' byte/],
  ['8101 00 87 0001020304050607', "reserved bit of 'x' (§4.1)", /reserved bit set in the KUDOS 'x' byte/],
  ['8101 00 07 00010203', 'nonce shorter than m + 1', /truncated KUDOS nonce/],
  ['c101 00 00 ab', 'RFC 8613 reserved bit 1 still refused', /reserved OSCORE flag bits/],
];
for (const [value, what, error] of MALFORMED) {
  test(`malformed: ${what}`, () => {
    assert.throws(() => decodeOscoreOption(h(value)), (e: unknown) => e instanceof MalformedOscoreOption && error.test((e as Error).message));
  });
}

test('encoding refuses what decoding would refuse', () => {
  assert.throws(() => encodeOscoreOption({ kudos: { x: 0x80, nonce: h('00') } }), RangeError);
  assert.throws(() => encodeOscoreOption({ kudos: { x: 0x07, nonce: h('00') } }), /does not match m/);
  assert.throws(() => encodeOscoreOption({ kudos: { x: 0x100, nonce: h('00') } }), RangeError);
});

test('round trip with the KUDOS fields (property)', () => {
  fc.assert(
    fc.property(
      fc.option(fc.uint8Array({ minLength: 1, maxLength: 5 }).filter((p) => p.length === 1 || p[0] !== 0), { nil: undefined }),
      fc.option(fc.uint8Array({ maxLength: 20 }), { nil: undefined }),
      fc.option(fc.uint8Array({ maxLength: 7 }), { nil: undefined }),
      fc.integer({ min: 0, max: 7 }),
      fc.uint8Array({ minLength: 1, maxLength: 16 }),
      (piv, kidContext, kid, bits, nonce) => {
        const kudos = { x: (bits << 4) | (nonce.length - 1), nonce };
        const value = { ...(piv ? { piv } : {}), ...(kidContext ? { kidContext } : {}), ...(kid ? { kid } : {}), kudos };
        const decoded = decodeOscoreOption(encodeOscoreOption(value));
        assert.deepEqual({ ...decoded, kudos: { x: decoded.kudos!.x, nonce: Uint8Array.from(decoded.kudos!.nonce) } }, {
          ...Object.fromEntries(Object.entries(decoded).filter(([k]) => k !== 'kudos')),
          kudos,
        });
        assert.deepEqual(decoded.piv && Uint8Array.from(decoded.piv), piv && Uint8Array.from(piv));
        assert.deepEqual(decoded.kid && Uint8Array.from(decoded.kid), kid && Uint8Array.from(kid));
      },
    ),
  );
});
