import { ipv4ToNumber } from "../../src/network/addresses.js";

/** Builds Ethernet frames as a guest would send them, for guard tests. */
export interface Ipv4FrameSpec {
  destination: string;
  source?: string;
  protocol?: "tcp" | "udp" | "icmp" | number;
  sourcePort?: number;
  destinationPort?: number;
  /** TCP flags byte (SYN = 0x02, ACK = 0x10). @default 0x10 */
  tcpFlags?: number;
  fragmentOffset?: number;
  moreFragments?: boolean;
  payload?: Buffer;
}

const PROTOCOLS = { tcp: 6, udp: 17, icmp: 1 } as const;

export function ethernetFrame(etherType: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(14);
  Buffer.from("525400000001", "hex").copy(header, 0);
  Buffer.from("525400123456", "hex").copy(header, 6);
  header.writeUInt16BE(etherType, 12);
  return Buffer.concat([header, payload]);
}

export function ipv4Frame(spec: Ipv4FrameSpec): Buffer {
  const protocol =
    typeof spec.protocol === "number" ? spec.protocol : PROTOCOLS[spec.protocol ?? "tcp"];
  const transport = transportHeader(protocol, spec);
  const body = Buffer.concat([transport, spec.payload ?? Buffer.alloc(0)]);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + body.length, 2);
  ip.writeUInt16BE(((spec.moreFragments ? 1 : 0) << 13) | (spec.fragmentOffset ?? 0), 6);
  ip[8] = 64;
  ip[9] = protocol;
  ip.writeUInt32BE(ipv4ToNumber(spec.source ?? "10.0.2.15"), 12);
  ip.writeUInt32BE(ipv4ToNumber(spec.destination), 16);
  return ethernetFrame(0x0800, Buffer.concat([ip, body]));
}

function transportHeader(protocol: number, spec: Ipv4FrameSpec): Buffer {
  if (protocol === 6) {
    const tcp = Buffer.alloc(20);
    tcp.writeUInt16BE(spec.sourcePort ?? 40_000, 0);
    tcp.writeUInt16BE(spec.destinationPort ?? 80, 2);
    tcp[12] = 5 << 4;
    tcp[13] = spec.tcpFlags ?? 0x10;
    return tcp;
  }
  if (protocol === 17) {
    const udp = Buffer.alloc(8);
    udp.writeUInt16BE(spec.sourcePort ?? 40_000, 0);
    udp.writeUInt16BE(spec.destinationPort ?? 53, 2);
    udp.writeUInt16BE(8 + (spec.payload?.length ?? 0), 4);
    return udp;
  }
  return Buffer.from([8, 0, 0, 0, 0, 0, 0, 0]);
}

export const SYN = 0x02;
export const ACK = 0x10;
export const SYN_ACK = SYN | ACK;
