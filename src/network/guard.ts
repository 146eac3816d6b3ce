import { HostAddresses, ipv4ToNumber, numberToIpv4, refusedIpv4Range } from "./addresses.js";
import { GUEST_NETWORK } from "./guest-network.js";
import {
  IP_PROTOCOL_ICMP,
  IP_PROTOCOL_TCP,
  IP_PROTOCOL_UDP,
  parseGuestFrame,
  TCP_FLAG,
  type Ipv4Packet,
} from "./packet.js";

/** What the guard knows about one VM's policy; `allowlist_proxy_port` set = allowlist mode. */
export interface GuardPolicy {
  /** Port of this workspace's allowlist proxy (on the host's loopback); null = plain egress. */
  allowlist_proxy_port: number | null;
  /** Guest ports published to the host: the guest may answer on them through 10.0.2.2. */
  published_guest_ports: readonly number[];
}

export type FrameVerdict =
  { allow: true } | { allow: false; reason: RefusalReason; destination: string };

export type RefusalReason =
  | "malformed"
  | "spoofed-source"
  | "not-ipv4"
  | "fragment"
  | "protocol"
  | "host-alias"
  | "host-address"
  | "slirp-network"
  | "dns-port"
  | "dns-under-allowlist"
  | "allowlist"
  | "this-network"
  | "loopback"
  | "link-local"
  | "multicast"
  | "reserved";

const GUEST = ipv4ToNumber(GUEST_NETWORK.address);
const GATEWAY = ipv4ToNumber(GUEST_NETWORK.gateway);
const DNS = ipv4ToNumber(GUEST_NETWORK.dns);
const SLIRP_NETWORK = ipv4ToNumber(GUEST_NETWORK.network);
const DNS_PORT = 53;

/**
 * Judges one Ethernet frame the guest sends toward slirp (net-design.md, "The guard").
 * Only what is allowed reaches slirp, and slirp would connect anywhere it is asked to.
 */
export function guestFrameVerdict(
  frame: Buffer,
  policy: GuardPolicy,
  hostAddresses: HostAddresses,
): FrameVerdict {
  const parsed = parseGuestFrame(frame);
  switch (parsed.kind) {
    case "arp":
      return { allow: true };
    case "malformed":
      return refuse("malformed", parsed.why);
    case "other":
      return refuse("not-ipv4", `ethertype 0x${parsed.etherType.toString(16).padStart(4, "0")}`);
    case "ipv4":
      return ipv4Verdict(parsed, policy, hostAddresses);
  }
}

function ipv4Verdict(ip: Ipv4Packet, policy: GuardPolicy, host: HostAddresses): FrameVerdict {
  const destination = describe(ip);
  // A later fragment carries no ports to judge, and slirp would reassemble it with a first
  // one; fragments are refused whole (the guest uses path-MTU discovery).
  if (ip.fragmentOffset !== 0 || ip.moreFragments) return refuse("fragment", destination);
  // Slirp keys its connections by the guest's address; one guest has one address.
  if (ip.source !== GUEST) return refuse("spoofed-source", destination);
  if (![IP_PROTOCOL_TCP, IP_PROTOCOL_UDP, IP_PROTOCOL_ICMP].includes(ip.protocol))
    return refuse("protocol", destination);
  if (ip.destination === GATEWAY) return gatewayVerdict(ip, policy, destination);
  if (ip.destination === DNS) return dnsVerdict(ip, policy, destination);
  const range = refusedIpv4Range(ip.destination);
  if (range) return refuse(range as RefusalReason, destination);
  // Slirp's other addresses (10.0.2.4 and up can be guestfwd/smb targets) serve nothing here.
  if ((ip.destination & 0xffffff00) >>> 0 === SLIRP_NETWORK)
    return refuse("slirp-network", destination);
  if (host.has(numberToIpv4(ip.destination))) return refuse("host-address", destination);
  if (policy.allowlist_proxy_port !== null) return refuse("allowlist", destination);
  return { allow: true };
}

/**
 * 10.0.2.2 is the host's loopback. Two things may go there: the allowlist proxy, and
 * the guest's side of a published port's connections, which slirp opened from the host,
 * never a new connection (a bare SYN) from such a port.
 */
function gatewayVerdict(ip: Ipv4Packet, policy: GuardPolicy, destination: string): FrameVerdict {
  if (ip.protocol !== IP_PROTOCOL_TCP || ip.tcpFlags === null)
    return refuse("host-alias", destination);
  if (policy.allowlist_proxy_port !== null && ip.destinationPort === policy.allowlist_proxy_port)
    return { allow: true };
  const bareSyn = (ip.tcpFlags & TCP_FLAG.syn) !== 0 && (ip.tcpFlags & TCP_FLAG.ack) === 0;
  if (!bareSyn && policy.published_guest_ports.includes(ip.sourcePort!)) return { allow: true };
  return refuse("host-alias", destination);
}

/** No DNS at all under an allowlist: a resolver is a tunnel to anywhere. */
function dnsVerdict(ip: Ipv4Packet, policy: GuardPolicy, destination: string): FrameVerdict {
  if (policy.allowlist_proxy_port !== null) return refuse("dns-under-allowlist", destination);
  const transport = ip.protocol === IP_PROTOCOL_TCP || ip.protocol === IP_PROTOCOL_UDP;
  if (transport && ip.destinationPort === DNS_PORT) return { allow: true };
  return refuse("dns-port", destination);
}

function refuse(reason: RefusalReason, destination: string): FrameVerdict {
  return { allow: false, reason, destination };
}

/** `tcp 10.0.2.2:80` - what a refusal line names (ports only when they were read). */
function describe(ip: Ipv4Packet): string {
  const name =
    { [IP_PROTOCOL_TCP]: "tcp", [IP_PROTOCOL_UDP]: "udp", [IP_PROTOCOL_ICMP]: "icmp" }[
      ip.protocol
    ] ?? `ip-proto-${ip.protocol}`;
  const port = ip.destinationPort === null ? "" : `:${ip.destinationPort}`;
  return `${name} ${numberToIpv4(ip.destination)}${port}`;
}
