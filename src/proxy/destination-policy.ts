/**
 * Which destinations a forward proxy may reach (issue 17 item 1). A proxy that forwards wherever
 * a Proxy-Uri points is a way into every network the proxy can see: loopback services, the LAN,
 * a cloud's metadata service at 169.254.169.254. So:
 *
 * - CoAP (coap/coaps) targets may be any public address; loopback, unspecified, link-local,
 *   private (RFC 1918, RFC 4193), shared (RFC 6598), multicast, broadcast and reserved addresses
 *   are refused unless an `allow` entry covers them.
 * - HTTP(S) targets (the CoAP→HTTP direction, off unless configured) are refused unless an
 *   `allow` entry covers them: an open CoAP→HTTP gateway relays to the whole web.
 *
 * The check is made on the address the host name resolved to (the one the proxy then connects
 * to), so a name that resolves to an internal address (DNS rebinding, a wildcard DNS service
 * such as 127.0.0.1.nip.io) is refused like the address itself. An `allow` entry that is a host
 * name permits that name whatever it resolves to: the operator vouches for it.
 *
 * Pure: no I/O. IPv4-mapped and NAT64 (64:ff9b::/96) IPv6 addresses are judged by the IPv4
 * address they carry.
 */
import { BlockList, isIP } from 'node:net';

/** Ranges no proxy should reach unless told to (a destination outside them is "public"). */
const REFUSED_V4 = [
  ['0.0.0.0', 8], // "this network", unspecified (RFC 1122 §3.2.1.3)
  ['10.0.0.0', 8], // private (RFC 1918)
  ['100.64.0.0', 10], // shared address space, carrier-grade NAT (RFC 6598)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (RFC 3927), cloud metadata 169.254.169.254
  ['172.16.0.0', 12], // private (RFC 1918)
  ['192.0.0.0', 24], // IETF protocol assignments (RFC 6890)
  ['192.168.0.0', 16], // private (RFC 1918)
  ['198.18.0.0', 15], // benchmarking (RFC 2544)
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and the limited broadcast 255.255.255.255
] as const;
const REFUSED_V6 = [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['fc00::', 7], // unique local (RFC 4193), includes AWS's metadata fd00:ec2::254
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated, RFC 3879)
  ['ff00::', 8], // multicast
] as const;

const refused = new BlockList();
for (const [address, prefix] of REFUSED_V4) refused.addSubnet(address, prefix, 'ipv4');
for (const [address, prefix] of REFUSED_V6) refused.addSubnet(address, prefix, 'ipv6');

/** The destination of a request is one this proxy does not reach (answered 5.05, RFC 7252 §5.7.2). */
export class DestinationRefusedError extends Error {
  constructor() {
    // The diagnostic says no more: which ranges are refused, or what a name resolved to, would
    // help map the network behind the proxy.
    super('this proxy does not forward to that destination');
  }
}

/** An `allow` entry that is neither an address, a CIDR nor a host name. */
export class DestinationEntryError extends Error {}

export interface DestinationPolicyOptions {
  /**
   * Destinations permitted besides public CoAP ones: CIDR networks ("127.0.0.0/8", "fd00::/8"),
   * addresses ("192.168.1.20") and host names ("sensor.lan", matched case-insensitively against
   * the target URI's host).
   */
  allow?: readonly string[];
}

export type DestinationKind = 'coap' | 'http';

export class DestinationPolicy {
  private readonly allowedNetworks = new BlockList();
  private readonly allowedNames = new Set<string>();
  private hasNetworks = false;

  constructor(options: DestinationPolicyOptions = {}) {
    for (const entry of options.allow ?? []) this.add(entry);
  }

  private add(entry: string): void {
    const text = entry.trim();
    const slash = text.indexOf('/');
    if (slash >= 0) {
      const address = unbracket(text.slice(0, slash));
      const prefixText = text.slice(slash + 1);
      const version = isIP(address);
      const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
      if (version === 0 || !(prefix >= 0 && prefix <= (version === 4 ? 32 : 128))) throw new DestinationEntryError(`not a CIDR network: "${entry}"`);
      this.allowedNetworks.addSubnet(address, prefix, version === 4 ? 'ipv4' : 'ipv6');
      this.hasNetworks = true;
      return;
    }
    const address = unbracket(text);
    const version = isIP(address);
    if (version !== 0) {
      this.allowedNetworks.addAddress(address, version === 4 ? 'ipv4' : 'ipv6');
      this.hasNetworks = true;
      return;
    }
    // RFC 1123 host names; a trailing dot (the root) is the same name.
    const name = text.toLowerCase().replace(/\.$/, '');
    if (!/^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/.test(name)) {
      throw new DestinationEntryError(`not an address, CIDR network or host name: "${entry}"`);
    }
    this.allowedNames.add(name);
  }

  /**
   * Whether a request may go to `host` (as the target URI names it) at `address` (what it
   * resolved to, the address the proxy connects to).
   */
  permits(kind: DestinationKind, host: string, address: string): boolean {
    if (this.allowedNames.has(unbracket(host).toLowerCase().replace(/\.$/, ''))) return true;
    const judged = embeddedIpv4(address) ?? address;
    const version = isIP(judged);
    if (version === 0) return false;
    const type = version === 4 ? 'ipv4' : 'ipv6';
    if (this.hasNetworks && (this.allowedNetworks.check(judged, type) || (judged !== address && this.allowedNetworks.check(address, 'ipv6')))) return true;
    if (kind === 'http') return false;
    return !refused.check(judged, type);
  }
}

/** Checks `allow` entries (for a CLI's usage error) without building a policy for them. */
export function checkDestinationEntries(entries: readonly string[]): void {
  new DestinationPolicy({ allow: entries });
}

const unbracket = (host: string): string => host.replace(/^\[(.*)\]$/, '$1');

/**
 * The IPv4 address inside an IPv4-mapped (::ffff:0:0/96) or NAT64 well-known-prefix
 * (64:ff9b::/96, RFC 6052) IPv6 address: a packet to either reaches that IPv4 address.
 */
function embeddedIpv4(address: string): string | undefined {
  if (isIP(address) !== 6) return undefined;
  const words = expandIpv6(address);
  if (words === undefined) return undefined;
  const mapped = words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff;
  const nat64 = words[0] === 0x64 && words[1] === 0xff9b && words.slice(2, 6).every((w) => w === 0);
  if (!mapped && !nat64) return undefined;
  return `${words[6]! >> 8}.${words[6]! & 0xff}.${words[7]! >> 8}.${words[7]! & 0xff}`;
}

/** The eight 16-bit words of an IPv6 literal (with or without an embedded dotted IPv4 tail). */
function expandIpv6(address: string): number[] | undefined {
  let text = address.replace(/%.*$/, '');
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const b = dotted[1]!.split('.').map(Number);
    text = `${text.slice(0, dotted.index)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return undefined;
  return [...head, ...Array<string>(missing).fill('0'), ...tail].map((w) => parseInt(w, 16));
}
