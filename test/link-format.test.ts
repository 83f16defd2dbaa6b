import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { filterLinks, LinkFormatError, parseLinkFormat, serializeLinks, type Link } from '../src/coap/link-format.js';

/** The /.well-known/core document of RFC 6690 §5, on one line. */
const RFC6690_EXAMPLE =
  '</sensors>;ct=40;title="Sensor Index",' +
  '</sensors/temp>;rt="temperature-c";if="sensor",' +
  '</sensors/light>;rt="light-lux";if="sensor",' +
  '<http://www.example.com/sensors/t123>;anchor="/sensors/temp";rel="describedby",' +
  '</t>;anchor="/sensors/temp";rel="alternate"';

const RFC6690_LINKS: Link[] = [
  { href: '/sensors', attributes: [['ct', '40'], ['title', 'Sensor Index']] },
  { href: '/sensors/temp', attributes: [['rt', 'temperature-c'], ['if', 'sensor']] },
  { href: '/sensors/light', attributes: [['rt', 'light-lux'], ['if', 'sensor']] },
  { href: 'http://www.example.com/sensors/t123', attributes: [['anchor', '/sensors/temp'], ['rel', 'describedby']] },
  { href: '/t', attributes: [['anchor', '/sensors/temp'], ['rel', 'alternate']] },
];

function assertMalformed(text: string, pattern: RegExp): void {
  assert.throws(() => parseLinkFormat(text), (e: unknown) => {
    assert.ok(e instanceof LinkFormatError && e instanceof Error, `expected LinkFormatError for ${text}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('parses and re-serializes the RFC 6690 §5 example exactly', () => {
  assert.deepEqual(parseLinkFormat(RFC6690_EXAMPLE), RFC6690_LINKS);
  assert.equal(serializeLinks(RFC6690_LINKS), RFC6690_EXAMPLE);
});

test('serializeLinks quotes rt, if and title, leaves ct, sz and other tokens bare, writes obs without a value', () => {
  const links: Link[] = [
    {
      href: '/temp',
      attributes: [['rt', 'temperature'], ['if', 'core.s'], ['ct', '0'], ['sz', '1280'], ['obs', true], ['title', 'T'], ['foo', 'bar']],
    },
  ];
  assert.equal(serializeLinks(links), '</temp>;rt="temperature";if="core.s";ct=0;sz=1280;obs;title="T";foo=bar');
});

test('serializeLinks quotes any value that is not a ptoken, escaping DQUOTE and backslash', () => {
  const links: Link[] = [
    {
      href: '/x',
      attributes: [['ct', '40 41'], ['foo', 'a,b;c'], ['empty', ''], ['q', 'say "hi" \\o/'], ['u', 'grüße']],
    },
  ];
  assert.equal(serializeLinks(links), '</x>;ct="40 41";foo="a,b;c";empty="";q="say \\"hi\\" \\\\o/";u="grüße"');
  assert.deepEqual(parseLinkFormat(serializeLinks(links)), links);
});

test('serializeLinks writes ext-values (title*) bare and refuses what cannot be written', () => {
  assert.equal(serializeLinks([{ href: '/', attributes: [['title*', "UTF-8'de'n%c3%a4chstes"]] }]), "</>;title*=UTF-8'de'n%c3%a4chstes");
  assert.throws(() => serializeLinks([{ href: '/', attributes: [['title*', 'has space']] }]), LinkFormatError);
  assert.throws(() => serializeLinks([{ href: '/', attributes: [['bad name', 'x']] }]), /invalid link attribute name/);
  assert.throws(() => serializeLinks([{ href: '/', attributes: [['', 'x']] }]), /invalid link attribute name/);
});

test('serializeLinks percent-encodes href characters that cannot appear in a URI-Reference', () => {
  assert.equal(serializeLinks([{ href: '/my res/ü>', attributes: [] }]), '</my%20res/%C3%BC%3E>');
  assert.equal(serializeLinks([{ href: '/a;b,c?d=e#f', attributes: [] }]), '</a;b,c?d=e#f>');
  assert.equal(serializeLinks([]), '');
});

test('parses quoted values containing commas, semicolons, escaped quotes and angle brackets', () => {
  const text = '</a>;title="x, y; z";foo="<not a link>",</b>;q="say \\"hi\\"";r="back\\\\slash"';
  assert.deepEqual(parseLinkFormat(text), [
    { href: '/a', attributes: [['title', 'x, y; z'], ['foo', '<not a link>']] },
    { href: '/b', attributes: [['q', 'say "hi"'], ['r', 'back\\slash']] },
  ]);
});

test('parses valueless and repeated attributes, unquoted values with "=" and "/", and whitespace between items', () => {
  const text = ' </obs> ; obs ; rt="a" ; rt = "b" ;\n ct=40,\r\n\t</t>;type=application/json;x=a=b ';
  assert.deepEqual(parseLinkFormat(text), [
    { href: '/obs', attributes: [['obs', true], ['rt', 'a'], ['rt', 'b'], ['ct', '40']] },
    { href: '/t', attributes: [['type', 'application/json'], ['x', 'a=b']] },
  ]);
});

test('an empty document has no links', () => {
  assert.deepEqual(parseLinkFormat(''), []);
  assert.deepEqual(parseLinkFormat(' \n'), []);
});

test('malformed documents throw LinkFormatError naming the offset', () => {
  assertMalformed('/a', /offset 0: expected "<"/);
  assertMalformed('</a', /expected ">" closing the link target/);
  assertMalformed('</a>;title="open', /expected closing '"'/);
  assertMalformed('</a>;title="x\\', /a character after "\\", found end of input/);
  assertMalformed('</a>;ct=', /offset 8: expected a value for attribute ct/);
  assertMalformed('</a>;ct=4 0', /offset 10: expected "," or ";", found "0"/);
  assertMalformed('</a>;=4', /expected a link attribute name/);
  assertMalformed('</a>;', /expected a link attribute name/);
  assertMalformed('</a>,', /offset 5: expected "<", found end of input/);
  assertMalformed('</a>,,</b>', /expected "<"/);
  assertMalformed('</a></b>', /expected "," or ";"/);
  assertMalformed('</a>;t="x"y', /expected "," or ";"/);
  assertMalformed('</a>;title=a"b', /expected "," or ";"/);
});

const parmnameArb = fc.stringMatching(/^[a-z][a-z0-9.!#$&+^_`|~-]{0,6}$/);
const valueArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.stringMatching(/^[a-z0-9/:.=<>-]{1,8}$/),
  fc.constantFrom('a b', '40 41', ',', ';', '"', '\\', '', 'x\ny'),
);
const linkArb: fc.Arbitrary<Link> = fc
  .tuple(
    fc.stringMatching(/^[a-z0-9/:?#@!$&'()*+,;=._~%-]{0,12}$/),
    fc.array(fc.tuple(parmnameArb, fc.oneof(valueArb, fc.constant(true as const))), { maxLength: 5 }),
  )
  .map(([href, attributes]) => ({ href, attributes }));

test('parseLinkFormat(serializeLinks(links)) gives back the links', () => {
  fc.assert(
    fc.property(fc.array(linkArb, { maxLength: 5 }), (links) => {
      assert.deepEqual(parseLinkFormat(serializeLinks(links)), links);
    }),
    { numRuns: 1500 },
  );
});

// --- RFC 6690 §4.1 query filtering ------------------------------------------------------------

const hrefs = (links: readonly Link[]): string[] => links.map((l) => l.href);

const DISCOVERY: Link[] = [
  ...RFC6690_LINKS,
  { href: '/outdoor', attributes: [['rt', 'outdoor temperature-c'], ['ct', '40 41'], ['obs', true]] },
  { href: '/sensors/humidity', attributes: [['rt', 'humidity'], ['if', 'sensor'], ['ct', '41']] },
];

test('name=value matches an attribute exactly, and any one value of a space-separated list', () => {
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['rt=temperature-c'])), ['/sensors/temp', '/outdoor']);
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['rt=temperature'])), [], 'exact, not a prefix');
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['ct=41'])), ['/outdoor', '/sensors/humidity']);
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['title=Sensor Index'])), ['/sensors'], 'the whole value matches too');
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['RT=humidity'])), ['/sensors/humidity'], 'names are case-insensitive');
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['rt=HUMIDITY'])), [], 'values are not');
});

test('a trailing "*" is a prefix match, on attributes and on href', () => {
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['rt=temp*'])), ['/sensors/temp', '/outdoor']);
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['href=/sensors/*'])), ['/sensors/temp', '/sensors/light', '/sensors/humidity']);
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['href=/sensors'])), ['/sensors']);
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['rt=*'])), ['/sensors/temp', '/sensors/light', '/outdoor', '/sensors/humidity']);
});

test('several query arguments must all match', () => {
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['if=sensor', 'rt=light*'])), ['/sensors/light']);
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['if=sensor', 'ct=41'])), ['/sensors/humidity']);
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['if=sensor', 'ct=40'])), []);
});

test('valueless attributes, presence-only arguments, unknown attributes and no arguments', () => {
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['obs'])), ['/outdoor']);
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['obs=*'])), ['/outdoor']);
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['obs=1'])), []);
  assert.deepEqual(hrefs(filterLinks(DISCOVERY, ['sz=*'])), []);
  assert.deepEqual(filterLinks(DISCOVERY, []), DISCOVERY);
  assert.deepEqual(filterLinks(DISCOVERY, ['']), DISCOVERY, 'an empty argument ("?") filters nothing');
});
