/** The OSCORE option value (RFC 8613 §6.1) and Partial IV encoding (§5). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  MAX_SEQUENCE_NUMBER,
  MalformedOscoreOption,
  SequenceNumberExhausted,
  decodeOscoreOption,
  decodePartialIv,
  encodeOscoreOption,
  encodePartialIv,
} from '../src/oscore/index.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));

test('Partial IV: fewest bytes, 0 as one zero byte, up to 2^40-1', () => {
  assert.deepEqual(encodePartialIv(0), Uint8Array.of(0));
  assert.deepEqual(encodePartialIv(20), Uint8Array.of(0x14));
  assert.deepEqual(encodePartialIv(255), Uint8Array.of(0xff));
  assert.deepEqual(encodePartialIv(256), Uint8Array.of(1, 0));
  assert.deepEqual(encodePartialIv(MAX_SEQUENCE_NUMBER), Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff));
  assert.equal(decodePartialIv(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff)), 2 ** 40 - 1);
  assert.throws(() => encodePartialIv(2 ** 40), SequenceNumberExhausted);
  assert.throws(() => encodePartialIv(-1), RangeError);
  assert.throws(() => encodePartialIv(1.5), RangeError);
});

test('Partial IV round trip (property)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: MAX_SEQUENCE_NUMBER }), (n) => {
      const piv = encodePartialIv(n);
      assert.equal(decodePartialIv(piv), n);
      assert.ok(piv.length === 1 || piv[0] !== 0);
    }),
  );
});

test('option value round trip (property)', () => {
  const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
  fc.assert(
    fc.property(
      opt(fc.integer({ min: 0, max: MAX_SEQUENCE_NUMBER })),
      opt(fc.uint8Array({ maxLength: 7 })),
      opt(fc.uint8Array({ maxLength: 255 })),
      (seq, kid, kidContext) => {
        const value = {
          ...(seq !== undefined ? { piv: encodePartialIv(seq) } : {}),
          ...(kid !== undefined ? { kid } : {}),
          ...(kidContext !== undefined ? { kidContext } : {}),
        };
        const decoded = decodeOscoreOption(encodeOscoreOption(value));
        assert.deepEqual(
          { piv: decoded.piv && [...decoded.piv], kid: decoded.kid && [...decoded.kid], ctx: decoded.kidContext && [...decoded.kidContext] },
          { piv: value.piv && [...value.piv], kid: value.kid && [...value.kid], ctx: value.kidContext && [...value.kidContext] },
        );
      },
    ),
  );
});

test('empty option value: no flags, no fields', () => {
  assert.deepEqual(decodeOscoreOption(new Uint8Array(0)), {});
  assert.deepEqual(encodeOscoreOption({}), new Uint8Array(0));
});

test('kid flag with nothing after it is the empty kid; kid context of length 0', () => {
  assert.deepEqual([...decodeOscoreOption(hex('08')).kid!], []);
  const v = decodeOscoreOption(hex('1000'));
  assert.deepEqual([...v.kidContext!], []);
  assert.equal(v.kid, undefined);
});

const MALFORMED: [string, string, RegExp][] = [
  ['29 01', 'reserved bit 5', /reserved OSCORE flag bits/],
  ['41 01', 'reserved bit 6', /reserved OSCORE flag bits/],
  // Bit 0 (0x80) is KUDOS's Extension-1 flag now (draft-ietf-core-oscore-key-update §4.1): the second
  // flag byte here sets 'd' and Partial IV length 1, and the Partial IV is missing.
  ['81 01', 'Extension-1 flag, truncated', /truncated Partial IV/],
  ['00', 'flag byte 0x00 not sent as empty', /empty option value/],
  ['06 010203040506', 'PIV length 6', /reserved Partial IV length 6/],
  ['0f 01020304050607', 'PIV length 7 with kid', /reserved Partial IV length 7/],
  ['03 0102', 'truncated PIV', /truncated Partial IV/],
  ['11 05', 'h set, no s byte', /no kid context length/],
  ['19 05 08 37cbf3', 'truncated kid context', /truncated kid context/],
  ['01 05 ff', 'trailing bytes without k', /trailing bytes/],
  ['02 0005', 'non-minimal PIV', /leading zero/],
];

for (const [bytes, what, message] of MALFORMED) {
  test(`malformed option value: ${what}`, () => {
    assert.throws(() => decodeOscoreOption(hex(bytes.replace(/ /g, ''))), (e: unknown) => e instanceof MalformedOscoreOption && message.test(e.message));
  });
}

test('decodeOscoreOption throws nothing but MalformedOscoreOption on arbitrary bytes (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
      try {
        decodeOscoreOption(bytes);
      } catch (e) {
        assert.ok(e instanceof MalformedOscoreOption);
      }
    }),
  );
});

test('encodeOscoreOption refuses a Partial IV of 0 or 6 bytes and an over-long kid context', () => {
  assert.throws(() => encodeOscoreOption({ piv: new Uint8Array(6) }), RangeError);
  assert.throws(() => encodeOscoreOption({ piv: new Uint8Array(0) }), RangeError);
  assert.throws(() => encodeOscoreOption({ kidContext: new Uint8Array(256) }), RangeError);
});
