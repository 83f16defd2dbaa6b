/**
 * IP address literals as they appear in CoAP URIs and socket addresses. Normalizing them matters
 * because RFC 7252 §6.4 step 5 omits Uri-Host only when the URI's host *is* the destination
 * address, and "::1", "0:0:0:0:0:0:0:1" and "[::1]" all name the same one. The canonical text
 * form is RFC 5952's, which is also what §6.3 and §6.5 step 2 ask for in URIs.
 */

const DEC_OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]|[0-9])';
/** RFC 3986 §3.2.2 IPv4address: dotted decimal, no leading zeros (so "01.2.3.4" is a reg-name). */
const IPV4 = new RegExp(`^${DEC_OCTET}(?:\\.${DEC_OCTET}){3}$`);

export const isIpv4 = (text: string): boolean => IPV4.test(text);

function ipv4Bytes(text: string): number[] {
  return text.split('.').map(Number);
}

/** The eight 16-bit groups of an IPv6 address (no zone, no brackets), or undefined if malformed. */
export function parseIpv6(text: string): number[] | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parseSide = (side: string, mayEndInIpv4: boolean): number[] | undefined => {
    if (side === '') return [];
    const parts = side.split(':');
    const groups: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (mayEndInIpv4 && i === parts.length - 1 && part.includes('.')) {
        if (!isIpv4(part)) return undefined;
        const [a, b, c, d] = ipv4Bytes(part) as [number, number, number, number];
        groups.push((a << 8) | b, (c << 8) | d);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return undefined;
        groups.push(parseInt(part, 16));
      }
    }
    return groups;
  };
  if (halves.length === 1) {
    const groups = parseSide(halves[0]!, true);
    return groups !== undefined && groups.length === 8 ? groups : undefined;
  }
  const head = parseSide(halves[0]!, false);
  const tail = parseSide(halves[1]!, true);
  // "::" stands for at least one zero group.
  if (head === undefined || tail === undefined || head.length + tail.length > 7) return undefined;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** RFC 5952 §4 text form: lower case, no leading zeros, the longest run (≥ 2) of zero groups as "::". */
export function formatIpv6(groups: readonly number[]): string {
  // RFC 5952 §5: IPv4-mapped addresses keep the dotted quad in the last 32 bits.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi, lo] = [groups[6]!, groups[7]!];
    return `::ffff:${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

export interface IpAddress {
  readonly version: 4 | 6;
  /** Canonical text: dotted decimal, or RFC 5952 IPv6 without brackets or zone. */
  readonly address: string;
  /** RFC 6874 zone (the part after "%" in "fe80::1%eth0"), IPv6 only. */
  readonly zone?: string;
}

/**
 * Parses "192.0.2.1", "2001:DB8::1", "[2001:db8::1]" or "fe80::1%eth0"; undefined for anything
 * that is not an IP address literal (a host name, for example).
 */
export function parseIpAddress(text: string): IpAddress | undefined {
  if (isIpv4(text)) return { version: 4, address: text };
  const unbracketed = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const zoneAt = unbracketed.indexOf('%');
  const groups = parseIpv6(zoneAt < 0 ? unbracketed : unbracketed.slice(0, zoneAt));
  if (groups === undefined) return undefined;
  const address = formatIpv6(groups);
  if (zoneAt < 0) return { version: 6, address };
  const zone = unbracketed.slice(zoneAt + 1);
  return zone === '' ? undefined : { version: 6, address, zone };
}

export const isIpAddress = (text: string): boolean => parseIpAddress(text) !== undefined;

/** Canonical text of an IP literal, zone kept ("fe80::1%eth0"); undefined when it is not one. */
export function normalizeIpAddress(text: string): string | undefined {
  const ip = parseIpAddress(text);
  if (ip === undefined) return undefined;
  return ip.zone === undefined ? ip.address : `${ip.address}%${ip.zone}`;
}

/**
 * Whether two literals name the same destination. An IPv4-mapped IPv6 address equals its IPv4
 * address (a dual-stack socket reports "::ffff:192.0.2.1" for a peer a URI calls "192.0.2.1"),
 * and zones are ignored: they are local to this node (RFC 6874 §1) and never go on the wire.
 */
export function sameIpAddress(a: string, b: string): boolean {
  const x = parseIpAddress(a);
  const y = parseIpAddress(b);
  if (x === undefined || y === undefined) return false;
  const unmapped = (ip: IpAddress): string => ip.address.startsWith('::ffff:') && ip.address.includes('.')
    ? ip.address.slice('::ffff:'.length)
    : ip.address;
  return unmapped(x) === unmapped(y);
}
