/**
 * Just enough of Ethernet, IPv4, TCP and UDP to judge a frame the guest sends. Every
 * length is checked against the bytes actually present: the guest wrote them all.
 */

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const IP_PROTOCOL_TCP = 6;
export const IP_PROTOCOL_UDP = 17;
export const IP_PROTOCOL_ICMP = 1;

const ETHERNET_HEADER_BYTES = 14;
const IPV4_MIN_HEADER_BYTES = 20;

export const TCP_FLAG = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10 } as const;

export interface Ipv4Packet {
  kind: "ipv4";
  protocol: number;
  /** Source and destination as 32-bit numbers. */
  source: number;
  destination: number;
  /** Offset in 8-byte units; with moreFragments, says the packet is a fragment (no ports read). */
  fragmentOffset: number;
  moreFragments: boolean;
  /** TCP or UDP ports, when the transport header is present and whole. */
  sourcePort: number | null;
  destinationPort: number | null;
  /** TCP flags byte, null for other protocols. */
  tcpFlags: number | null;
}

export type ParsedFrame =
  | { kind: "arp" }
  | Ipv4Packet
  | { kind: "other"; etherType: number }
  | { kind: "malformed"; why: string };

/** Parses the headers of one Ethernet frame from the guest. */
export function parseGuestFrame(frame: Buffer): ParsedFrame {
  if (frame.length < ETHERNET_HEADER_BYTES) return { kind: "malformed", why: "short-ethernet" };
  const etherType = frame.readUInt16BE(12);
  // A VLAN tag is "other": the guest has no VLANs, and tagged frames would hide the payload.
  if (etherType === ETHERTYPE_ARP) return { kind: "arp" };
  if (etherType !== ETHERTYPE_IPV4) return { kind: "other", etherType };
  return parseIpv4(frame.subarray(ETHERNET_HEADER_BYTES));
}

function parseIpv4(packet: Buffer): Ipv4Packet | { kind: "malformed"; why: string } {
  if (packet.length < IPV4_MIN_HEADER_BYTES) return { kind: "malformed", why: "short-ipv4" };
  const version = packet[0]! >> 4;
  const headerBytes = (packet[0]! & 0x0f) * 4;
  if (version !== 4) return { kind: "malformed", why: "ipv4-version" };
  if (headerBytes < IPV4_MIN_HEADER_BYTES || headerBytes > packet.length)
    return { kind: "malformed", why: "ipv4-header-length" };
  const totalLength = packet.readUInt16BE(2);
  // Slirp trusts total length; one beyond the bytes present or inside the header is bogus.
  if (totalLength < headerBytes || totalLength > packet.length)
    return { kind: "malformed", why: "ipv4-total-length" };
  const flagsAndOffset = packet.readUInt16BE(6);
  const parsed: Ipv4Packet = {
    kind: "ipv4",
    protocol: packet[9]!,
    source: packet.readUInt32BE(12),
    destination: packet.readUInt32BE(16),
    fragmentOffset: flagsAndOffset & 0x1fff,
    moreFragments: (flagsAndOffset & 0x2000) !== 0,
    sourcePort: null,
    destinationPort: null,
    tcpFlags: null,
  };
  if (parsed.fragmentOffset !== 0 || parsed.moreFragments) return parsed;
  return withTransport(parsed, packet.subarray(headerBytes, totalLength));
}

function withTransport(
  ip: Ipv4Packet,
  payload: Buffer,
): Ipv4Packet | { kind: "malformed"; why: string } {
  if (ip.protocol === IP_PROTOCOL_TCP) {
    if (payload.length < 20) return { kind: "malformed", why: "short-tcp" };
    return {
      ...ip,
      sourcePort: payload.readUInt16BE(0),
      destinationPort: payload.readUInt16BE(2),
      tcpFlags: payload[13]!,
    };
  }
  if (ip.protocol === IP_PROTOCOL_UDP) {
    if (payload.length < 8) return { kind: "malformed", why: "short-udp" };
    return { ...ip, sourcePort: payload.readUInt16BE(0), destinationPort: payload.readUInt16BE(2) };
  }
  return ip;
}
