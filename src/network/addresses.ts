import { isIPv4, isIPv6 } from "node:net";
import { networkInterfaces } from "node:os";

/**
 * Which destinations are never reachable from a guest, under any policy (net-design.md):
 * the host itself (loopback, its own interfaces), link-local (cloud metadata at
 * 169.254.169.254), "this network", multicast, reserved and broadcast.
 */
const REFUSED_IPV4_RANGES: readonly { base: number; prefixLen: number; why: string }[] = [
  { base: ipv4ToNumber("0.0.0.0"), prefixLen: 8, why: "this-network" },
  { base: ipv4ToNumber("127.0.0.0"), prefixLen: 8, why: "loopback" },
  { base: ipv4ToNumber("169.254.0.0"), prefixLen: 16, why: "link-local" },
  { base: ipv4ToNumber("224.0.0.0"), prefixLen: 4, why: "multicast" },
  // 240/4 also holds 255.255.255.255, the limited broadcast.
  { base: ipv4ToNumber("240.0.0.0"), prefixLen: 4, why: "reserved" },
];

/** Dotted quad to its 32-bit value. The caller passes a valid IPv4 text. */
export function ipv4ToNumber(address: string): number {
  return address.split(".").reduce((value, part) => value * 256 + Number(part), 0);
}

export function numberToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join(".");
}

/** Why an IPv4 address is refused for every policy (range part only), or null. */
export function refusedIpv4Range(address: number): string | null {
  for (const range of REFUSED_IPV4_RANGES) {
    const mask = range.prefixLen === 0 ? 0 : (~0 << (32 - range.prefixLen)) >>> 0;
    if ((address & mask) >>> 0 === range.base) return range.why;
  }
  return null;
}

/**
 * Why an IPv6 address is refused, or null: loopback, unspecified, link-local, multicast,
 * and IPv4-mapped or -compatible forms of refused IPv4 addresses (`::ffff:127.0.0.1`).
 */
export function refusedIpv6(address: string): string | null {
  const lower = address.toLowerCase();
  const mapped = /^::(?:ffff:)?(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (mapped) return refusedIpv4Range(ipv4ToNumber(mapped[1]!));
  if (lower === "::1") return "loopback";
  if (lower === "::") return "this-network";
  if (/^fe[89ab]/.test(lower)) return "link-local";
  if (lower.startsWith("ff")) return "multicast";
  return null;
}

/**
 * The host's own addresses, re-read from the interfaces at most every `refreshMs`: an
 * interface that appears later (a VPN, a container bridge) is refused from then on.
 */
export class HostAddresses {
  private addresses = new Set<string>();
  private readAt = -Infinity;

  constructor(
    private readonly refreshMs = 2_000,
    private readonly now: () => number = () => performance.now(),
    private readonly read: () => string[] = readInterfaceAddresses,
  ) {}

  has(address: string): boolean {
    if (this.now() - this.readAt >= this.refreshMs) {
      this.addresses = new Set(this.read().map((a) => a.toLowerCase()));
      this.readAt = this.now();
    }
    return this.addresses.has(address.toLowerCase());
  }
}

function readInterfaceAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) =>
    (list ?? []).map((entry) => entry.address.replace(/%.*$/, "")),
  );
}

/**
 * Why the host must not connect to this resolved address for a guest (the allowlist
 * proxy's check after DNS), or null when it may.
 */
export function refusedDestination(address: string, host: HostAddresses): string | null {
  if (host.has(address)) return "host-address";
  if (isIPv4(address)) return refusedIpv4Range(ipv4ToNumber(address));
  if (isIPv6(address)) return refusedIpv6(address);
  return "not-an-address";
}
