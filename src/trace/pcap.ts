/**
 * Issue 28: classic libpcap files (not pcapng) from datagrams a program carried itself, so a
 * capture needs neither root nor tcpdump. LINKTYPE_RAW (101): each packet is an IPv4 header and a
 * UDP header synthesized around the datagram (RFC 791, RFC 768; the UDP checksum is 0, "not
 * computed", which IPv4 allows).
 */
export interface CapturedDatagram {
  /** Milliseconds since the epoch (or any origin; only differences matter to a reader). */
  at: number;
  from: { address: string; port: number };
  to: { address: string; port: number };
  payload: Uint8Array;
}

const LINKTYPE_RAW = 101;
const SNAPLEN = 65535;

function ipv4(address: string): Buffer {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`pcap: not an IPv4 address: ${address}`);
  return Buffer.from(parts);
}

function checksum(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i < header.length; i += 2) sum += header.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The IPv4 + UDP packet carrying one datagram. */
export function ipv4UdpPacket(d: CapturedDatagram, id = 0): Buffer {
  const udpLength = 8 + d.payload.length;
  if (20 + udpLength > 0xffff) throw new RangeError('pcap: datagram too large for IPv4');
  const ip = Buffer.alloc(20);
  ip[0] = 0x45; // version 4, header length 5 words
  ip.writeUInt16BE(20 + udpLength, 2);
  ip.writeUInt16BE(id & 0xffff, 4);
  ip.writeUInt16BE(0x4000, 6); // don't fragment
  ip[8] = 64; // TTL
  ip[9] = 17; // UDP
  ipv4(d.from.address).copy(ip, 12);
  ipv4(d.to.address).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(d.from.port, 0);
  udp.writeUInt16BE(d.to.port, 2);
  udp.writeUInt16BE(udpLength, 4);
  return Buffer.concat([ip, udp, d.payload]);
}

/** A whole pcap file: global header, then one record per datagram in the given order. */
export function encodePcap(datagrams: readonly CapturedDatagram[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0); // microsecond timestamps, little-endian
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(SNAPLEN, 16);
  header.writeUInt32LE(LINKTYPE_RAW, 20);
  const records = datagrams.map((d, i) => {
    const packet = ipv4UdpPacket(d, i + 1);
    const r = Buffer.alloc(16);
    const micros = Math.round(d.at * 1000);
    r.writeUInt32LE(Math.floor(micros / 1e6), 0);
    r.writeUInt32LE(micros % 1e6, 4);
    r.writeUInt32LE(packet.length, 8);
    r.writeUInt32LE(packet.length, 12);
    return Buffer.concat([r, packet]);
  });
  return Buffer.concat([header, ...records]);
}
