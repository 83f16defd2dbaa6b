/**
 * The CoAP Content-Formats registry (RFC 7252 §12.3, IANA "CoRE Parameters"): the number carried
 * in Content-Format and Accept, and the media type (plus parameters or content coding) it stands
 * for. Only RFC- or W3C-backed assignments are listed; numbers not listed are still valid on the
 * wire, they just have no name here.
 */

/** Named constants for the formats the stack itself produces or inspects. */
export const ContentFormat = {
  TextPlain: 0,
  CoseEncrypt0: 16,
  CoseMac0: 17,
  CoseSign1: 18,
  AceCbor: 19,
  LinkFormat: 40,
  Xml: 41,
  OctetStream: 42,
  Exi: 47,
  Json: 50,
  JsonPatchJson: 51,
  MergePatchJson: 52,
  Cbor: 60,
  Cwt: 61,
  MultipartCore: 62,
  CborSeq: 63,
  EdhocCborSeq: 64,
  CidEdhocCborSeq: 65,
  CoseKey: 101,
  CoseKeySet: 102,
  SenmlJson: 110,
  SenmlCbor: 112,
  ConciseProblemDetailsCbor: 257,
  MissingBlocksCborSeq: 272,
  Oscore: 10001,
} as const;

const REGISTRY: ReadonlyArray<readonly [number, string]> = [
  [0, 'text/plain; charset=utf-8'], // RFC 7252
  [16, 'application/cose; cose-type="cose-encrypt0"'], // RFC 9052
  [17, 'application/cose; cose-type="cose-mac0"'],
  [18, 'application/cose; cose-type="cose-sign1"'],
  [19, 'application/ace+cbor'], // RFC 9200
  [21, 'image/gif'],
  [22, 'image/jpeg'],
  [23, 'image/png'],
  [40, 'application/link-format'], // RFC 6690
  [41, 'application/xml'],
  [42, 'application/octet-stream'],
  [47, 'application/exi'],
  [50, 'application/json'],
  [51, 'application/json-patch+json'], // RFC 8132
  [52, 'application/merge-patch+json'], // RFC 8132
  [60, 'application/cbor'], // RFC 8949
  [61, 'application/cwt'], // RFC 8392
  [62, 'application/multipart-core'], // RFC 8710
  [63, 'application/cbor-seq'], // RFC 8742
  [64, 'application/edhoc+cbor-seq'], // RFC 9528
  [65, 'application/cid-edhoc+cbor-seq'], // RFC 9528
  [96, 'application/cose; cose-type="cose-encrypt"'],
  [97, 'application/cose; cose-type="cose-mac"'],
  [98, 'application/cose; cose-type="cose-sign"'],
  [101, 'application/cose-key'],
  [102, 'application/cose-key-set'],
  [110, 'application/senml+json'], // RFC 8428
  [111, 'application/sensml+json'],
  [112, 'application/senml+cbor'],
  [113, 'application/sensml+cbor'],
  [114, 'application/senml-exi'],
  [115, 'application/sensml-exi'],
  [140, 'application/yang-data+cbor; id=sid'], // RFC 9254
  [256, 'application/coap-group+json'], // RFC 7390
  [257, 'application/concise-problem-details+cbor'], // RFC 9290
  [258, 'application/swid+cbor'],
  [271, 'application/dots+cbor'], // RFC 9132
  [272, 'application/missing-blocks+cbor-seq'], // RFC 9177
  [280, 'application/pkcs7-mime; smime-type=server-generated-key'], // RFC 9148
  [281, 'application/pkcs7-mime; smime-type=certs-only'],
  [284, 'application/pkcs8'],
  [285, 'application/csrattrs'],
  [286, 'application/pkcs10'],
  [287, 'application/pkix-cert'],
  [290, 'application/aif+cbor'], // RFC 9237
  [291, 'application/aif+json'],
  [310, 'application/senml+xml'],
  [311, 'application/sensml+xml'],
  [320, 'application/senml-etch+json'], // RFC 8790
  [322, 'application/senml-etch+cbor'],
  [340, 'application/yang-data+cbor'],
  [341, 'application/yang-data+cbor; id=name'],
  [432, 'application/td+json'], // W3C WoT
  [10000, 'application/vnd.ocf+cbor'],
  [10001, 'application/oscore'], // RFC 8613 §13.6
  [10002, 'application/javascript'],
  [11050, 'application/json; content-coding=deflate'],
  [11060, 'application/cbor; content-coding=deflate'],
  [11542, 'application/vnd.oma.lwm2m+tlv'],
  [11543, 'application/vnd.oma.lwm2m+json'],
  [11544, 'application/vnd.oma.lwm2m+cbor'],
  [20000, 'text/css'],
  [30000, 'image/svg+xml'],
];

/** Short names for the command line and configuration files. */
const ALIASES: ReadonlyArray<readonly [string, number]> = [
  ['text', 0],
  ['plain', 0],
  ['text/plain', 0],
  ['cose-encrypt0', 16],
  ['cose-mac0', 17],
  ['cose-sign1', 18],
  ['link', 40],
  ['link-format', 40],
  ['xml', 41],
  ['octet', 42],
  ['octet-stream', 42],
  ['binary', 42],
  ['exi', 47],
  ['json', 50],
  ['json-patch', 51],
  ['merge-patch', 52],
  ['cbor', 60],
  ['cwt', 61],
  ['cbor-seq', 63],
  ['edhoc', 64],
  ['senml-json', 110],
  ['senml+json', 110],
  ['senml-cbor', 112],
  ['senml+cbor', 112],
  ['oscore', 10001],
];

/**
 * Media types compare case-insensitively and parameters may be written with or without the
 * space after ";" (RFC 7252 §12.3 itself prints "text/plain;" and "charset=utf-8" on two lines).
 */
const normalizeMediaType = (text: string): string => text.trim().toLowerCase().replace(/\s*;\s*/g, '; ');

const NAME_BY_NUMBER: ReadonlyMap<number, string> = new Map(REGISTRY);
const NUMBER_BY_NAME: ReadonlyMap<string, number> = new Map([
  ...REGISTRY.map(([n, name]) => [normalizeMediaType(name), n] as const),
  ...ALIASES,
]);

export const contentFormatName = (n: number): string | undefined => NAME_BY_NUMBER.get(n);

/** "application/json (50)", or just "50" for a number the registry table here does not name. */
export function describeContentFormat(n: number): string {
  const name = NAME_BY_NUMBER.get(n);
  return name === undefined ? String(n) : `${name} (${n})`;
}

/**
 * A Content-Format number from a decimal number (0–65535), a registered media type
 * ("application/cbor", "text/plain;charset=utf-8") or a short alias ("json", "cbor", "link").
 * Throws Error naming the input when it is none of these.
 */
export function parseContentFormat(text: string): number {
  const trimmed = text.trim();
  if (/^[0-9]+$/.test(trimmed)) {
    const n = Number(trimmed);
    if (n > 0xffff) throw new Error(`content format ${trimmed} is out of range 0-65535`);
    return n;
  }
  const key = normalizeMediaType(trimmed);
  const n = NUMBER_BY_NAME.get(key) ?? (key.includes('/') ? undefined : NUMBER_BY_NAME.get(`application/${key}`));
  if (n === undefined) {
    throw new Error(
      `unknown content format ${JSON.stringify(text)}: give a number 0-65535, a media type such as ` +
        `application/json, or one of ${ALIASES.map(([alias]) => alias).filter((a) => !a.includes('/')).join(', ')}`,
    );
  }
  return n;
}

/**
 * Whether a payload of this format is text a person can read when printed: text/*, JSON, XML,
 * JavaScript and link-format, including +json/+xml structured-syntax suffixes (RFC 6839), but not
 * when a content coding such as deflate makes it binary.
 */
export function isTextual(n: number): boolean {
  const name = NAME_BY_NUMBER.get(n);
  if (name === undefined || name.includes('content-coding=')) return false;
  const [type, subtype] = name.split(';')[0]!.split('/') as [string, string];
  if (type === 'text') return true;
  return /^(json|xml|javascript|link-format)$|\+(json|xml)$/.test(subtype);
}
