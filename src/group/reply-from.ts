/**
 * The value of the Reply-From option (draft-ietf-core-groupcomm-proxy §3): a CBOR sequence of one
 * CRI (draft-ietf-core-href §5.1) giving the scheme and authority of the server that sent a
 * response — path, query and fragment left off — optionally followed by a CRI reference (scheme
 * null; an authority and/or a path) that a reverse proxy uses to name a member behind it (§6.1).
 *
 * Only what the option needs of CRIs is here: scheme ids of the CoAP schemes (href Table 3,
 * scheme-id = -1 - scheme number), hosts as IP literals (host-ip, 4 or 16 bytes) or host names
 * (text labels), and a port. Decoding is strict (deterministic CBOR, no extra items): the value is
 * read by a client to decide where a response came from.
 */
import { decodeSequenceStrict, encodeSequence, type CborValue } from '../cose/cbor.js';
import { formatIpv6, parseIpAddress, parseIpv6 } from '../coap/ip-address.js';
import { defaultPort } from '../coap/uri.js';

/** href Table 3: CRI scheme numbers of the CoAP schemes. */
const SCHEME_NUMBERS: ReadonlyMap<string, number> = new Map([
  ['coap', 0],
  ['coaps', 1],
  ['coap+tcp', 6],
  ['coaps+tcp', 7],
  ['coap+ws', 24],
  ['coaps+ws', 25],
]);
const SCHEME_NAMES: ReadonlyMap<number, string> = new Map([...SCHEME_NUMBERS].map(([name, number]) => [number, name]));

/** Where a response came from: the origin server (or, behind a reverse proxy, where to reach it). */
export interface ReplyFrom {
  readonly scheme: string;
  /** An IP literal (no brackets) or a host name. */
  readonly host: string;
  readonly port: number;
  /** §6.1, a reverse proxy standing in for each member: the Uri-Host/Uri-Port/Uri-Path to send it. */
  readonly reference?: { readonly host?: string; readonly port?: number; readonly path: readonly string[] };
}

export class ReplyFromError extends Error {}

function encodeAuthority(host: string, port: number | undefined): CborValue[] {
  const ip = parseIpAddress(host);
  const hostItems: CborValue[] = ip !== undefined ? [ipBytes(ip.version, ip.address)] : host.toLowerCase().split('.');
  return port === undefined ? hostItems : [...hostItems, port];
}

function ipBytes(version: 4 | 6, address: string): Uint8Array {
  if (version === 4) return Uint8Array.from(address.split('.').map(Number));
  const bytes = new Uint8Array(16);
  parseIpv6(address)!.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

/** The option value naming `origin` (§5.4.1 step 1: the CRI of the server's address; no reference). */
export function encodeReplyFrom(origin: ReplyFrom): Uint8Array {
  const number = SCHEME_NUMBERS.get(origin.scheme);
  if (number === undefined) throw new ReplyFromError(`no CRI scheme number for ${origin.scheme}`);
  const cri: CborValue[] = [-1 - number, encodeAuthority(origin.host, origin.port)];
  if (origin.reference === undefined) return encodeSequence(cri);
  const { host, port, path } = origin.reference;
  // §3: "If 'authority' is given in this CRI reference, then the CRI ... MUST NOT have 'host' of the form host-name".
  if (host !== undefined && parseIpAddress(origin.host) === undefined) throw new ReplyFromError('a reference with an authority needs the first CRI to name an IP address');
  const reference: CborValue[] = [null, host !== undefined ? encodeAuthority(host, port) : null, [...path]];
  return encodeSequence(cri, reference);
}

function decodeAuthority(value: CborValue, where: string): { host: string; port: number | undefined } {
  if (!Array.isArray(value) || value.length === 0) throw new ReplyFromError(`${where}: the authority is not a non-empty array`);
  const items = [...value];
  if (items[0] === false) throw new ReplyFromError(`${where}: a userinfo has no place in Reply-From`);
  let port: number | undefined;
  if (typeof items[items.length - 1] === 'number') {
    port = items.pop() as number;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ReplyFromError(`${where}: port ${port} out of range`);
  }
  const first = items[0];
  if (first instanceof Uint8Array) {
    if (items.length !== 1) throw new ReplyFromError(`${where}: a zone identifier has no meaning at the receiver`);
    if (first.length === 4) return { host: [...first].join('.'), port };
    if (first.length === 16) {
      const groups: number[] = [];
      for (let i = 0; i < 16; i += 2) groups.push((first[i]! << 8) | first[i + 1]!);
      return { host: formatIpv6(groups), port };
    }
    throw new ReplyFromError(`${where}: a host-ip of ${first.length} bytes`);
  }
  if (items.length === 0 || !items.every((label) => typeof label === 'string' && label !== '' && !label.includes('.'))) throw new ReplyFromError(`${where}: the host is neither an IP address nor host-name labels`);
  return { host: (items as string[]).join('.'), port };
}

/** Reads a Reply-From value; throws ReplyFromError when it is not one (the response is then not attributable). */
export function decodeReplyFrom(value: Uint8Array): ReplyFrom {
  let items: CborValue[];
  try {
    items = decodeSequenceStrict(value);
  } catch (error) {
    throw new ReplyFromError(`Reply-From is not a CBOR sequence: ${(error as Error).message}`);
  }
  if (items.length < 1 || items.length > 2) throw new ReplyFromError(`Reply-From holds ${items.length} items, not one or two CRIs`);
  const cri = items[0];
  // §3: scheme and authority given, path, query and fragment not.
  if (!Array.isArray(cri) || cri.length !== 2) throw new ReplyFromError('the first CRI of Reply-From must give exactly a scheme and an authority');
  const schemeId = cri[0];
  const scheme = typeof schemeId === 'number' ? SCHEME_NAMES.get(-1 - schemeId) : undefined;
  if (scheme === undefined) throw new ReplyFromError(`Reply-From names a scheme this client does not use (${String(schemeId)})`);
  const authority = decodeAuthority(cri[1]!, 'Reply-From');
  const origin = { scheme, host: authority.host, port: authority.port ?? defaultPort(scheme)! };
  if (items.length === 1) return origin;
  const reference = items[1];
  if (!Array.isArray(reference) || reference.length < 2 || reference.length > 3 || reference[0] !== null) throw new ReplyFromError('the second item of Reply-From is not a CRI reference with a null scheme');
  const refAuthority = reference[1] === null ? undefined : decodeAuthority(reference[1]!, 'the Reply-From reference');
  const path = reference[2] ?? [];
  if (!Array.isArray(path) || !path.every((s) => typeof s === 'string')) throw new ReplyFromError('the Reply-From reference has a bad path');
  if (refAuthority === undefined && path.length === 0) throw new ReplyFromError('the Reply-From reference gives neither an authority nor a path');
  if (refAuthority !== undefined && parseIpAddress(origin.host) === undefined) throw new ReplyFromError('a Reply-From reference with an authority after a host name (§3)');
  return {
    ...origin,
    reference: { ...(refAuthority !== undefined ? { host: refAuthority.host, ...(refAuthority.port !== undefined ? { port: refAuthority.port } : {}) } : {}), path: path as string[] },
  };
}
