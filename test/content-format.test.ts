import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ContentFormat, contentFormatName, describeContentFormat, isTextual, parseContentFormat } from '../src/coap/content-format.js';

test('names of the RFC 7252 §12.3 entries and later registrations', () => {
  assert.equal(contentFormatName(0), 'text/plain; charset=utf-8');
  assert.equal(contentFormatName(40), 'application/link-format');
  assert.equal(contentFormatName(41), 'application/xml');
  assert.equal(contentFormatName(42), 'application/octet-stream');
  assert.equal(contentFormatName(47), 'application/exi');
  assert.equal(contentFormatName(50), 'application/json');
  assert.equal(contentFormatName(16), 'application/cose; cose-type="cose-encrypt0"');
  assert.equal(contentFormatName(60), 'application/cbor');
  assert.equal(contentFormatName(112), 'application/senml+cbor');
  assert.equal(contentFormatName(10001), 'application/oscore');
  assert.equal(contentFormatName(1), undefined);
  assert.equal(contentFormatName(65000), undefined);
  assert.equal(describeContentFormat(50), 'application/json (50)');
  assert.equal(describeContentFormat(1234), '1234');
  assert.equal(ContentFormat.LinkFormat, 40);
  assert.equal(ContentFormat.Oscore, 10001);
});

test('parseContentFormat accepts numbers 0-65535', () => {
  assert.equal(parseContentFormat('0'), 0);
  assert.equal(parseContentFormat(' 50 '), 50);
  assert.equal(parseContentFormat('65535'), 65535);
  assert.equal(parseContentFormat('1234'), 1234, 'unnamed numbers are still valid');
  assert.throws(() => parseContentFormat('65536'), /out of range 0-65535/);
  assert.throws(() => parseContentFormat('-1'), /unknown content format "-1"/);
  assert.throws(() => parseContentFormat('1.5'), /unknown content format/);
});

test('parseContentFormat accepts media types, with or without parameters spacing, in any case', () => {
  assert.equal(parseContentFormat('application/json'), 50);
  assert.equal(parseContentFormat('Application/JSON'), 50);
  assert.equal(parseContentFormat('text/plain;charset=utf-8'), 0);
  assert.equal(parseContentFormat('text/plain; charset=utf-8'), 0);
  assert.equal(parseContentFormat('text/plain'), 0);
  assert.equal(parseContentFormat('application/cose; cose-type="cose-encrypt0"'), 16);
  assert.equal(parseContentFormat('senml+json'), 110, 'a bare subtype means application/…');
  assert.equal(parseContentFormat('cbor-seq'), 63);
});

test('parseContentFormat accepts the short aliases', () => {
  const aliases: Array<[string, number]> = [
    ['text', 0], ['json', 50], ['cbor', 60], ['link', 40], ['link-format', 40], ['octet', 42], ['xml', 41],
    ['exi', 47], ['cwt', 61], ['oscore', 10001], ['cose-encrypt0', 16], ['json-patch', 51], ['merge-patch', 52],
  ];
  for (const [alias, n] of aliases) assert.equal(parseContentFormat(alias), n, alias);
});

test('parseContentFormat rejects unknown names with a message that says what is accepted', () => {
  assert.throws(() => parseContentFormat('foo/bar'), (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.match(e.message, /unknown content format "foo\/bar"/);
    assert.match(e.message, /json/);
    return true;
  });
  assert.throws(() => parseContentFormat(''), /unknown content format ""/);
  assert.throws(() => parseContentFormat('text/html'), /unknown content format/);
});

test('every named format parses back from its name', () => {
  for (let n = 0; n <= 0xffff; n++) {
    const name = contentFormatName(n);
    if (name !== undefined) assert.equal(parseContentFormat(name), n, name);
  }
});

test('isTextual: text, JSON, XML, link-format and +json/+xml suffixes; not binary or content-coded formats', () => {
  for (const n of [0, 40, 41, 50, 51, 52, 110, 111, 256, 310, 320, 432, 10002, 11543, 20000, 30000]) {
    assert.equal(isTextual(n), true, `${n} ${contentFormatName(n)}`);
  }
  for (const n of [16, 42, 47, 60, 61, 63, 112, 114, 10001, 11050, 11542, 1, 65000]) {
    assert.equal(isTextual(n), false, `${n} ${contentFormatName(n)}`);
  }
});
