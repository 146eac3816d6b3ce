import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { HostAddresses, refusedDestination } from "./addresses.js";
import { domainAllowed } from "./domains.js";

/** Resolves a name to IPv4 addresses (the guest network is IPv4 only). */
export type Resolver = (host: string) => Promise<string[]>;

export const systemResolver: Resolver = async (host) =>
  (await lookup(host, { all: true, family: 4 })).map((entry) => entry.address);

export type TargetDecision =
  | { allow: true; host: string; address: string; port: number }
  | { allow: false; reason: ProxyRefusalReason; detail: string };

export type ProxyRefusalReason =
  | "bad-target"
  | "not-allowed"
  | "ip-literal"
  | "refused-address"
  | "unresolved"
  | "host-mismatch"
  | "sni-mismatch"
  | "not-tls"
  | "not-absolute-uri";

export interface TargetCheck {
  allowedDomains: readonly string[];
  resolve: Resolver;
  hostAddresses: HostAddresses;
}

/**
 * Decides whether the proxy may connect to `host:port` for the guest: the name must be
 * on the list, and every address it resolves to must be one the host may reach. The
 * connection then goes to the address checked here, so a second lookup cannot change it.
 */
export async function checkTarget(
  check: TargetCheck,
  rawHost: string,
  port: number,
): Promise<TargetDecision> {
  const host = rawHost.toLowerCase().replace(/\.$/, "");
  if (!Number.isInteger(port) || port < 1 || port > 65_535 || host === "")
    return { allow: false, reason: "bad-target", detail: `${rawHost}:${port}` };
  const target = `${host}:${port}`;
  if (!domainAllowed(check.allowedDomains, host))
    return { allow: false, reason: isIP(host) ? "ip-literal" : "not-allowed", detail: target };
  let addresses: string[];
  try {
    addresses = isIP(host) ? [host] : await check.resolve(host);
  } catch {
    return { allow: false, reason: "unresolved", detail: target };
  }
  if (addresses.length === 0) return { allow: false, reason: "unresolved", detail: target };
  for (const address of addresses) {
    const why = refusedDestination(address, check.hostAddresses);
    if (why)
      return { allow: false, reason: "refused-address", detail: `${target} (${address} ${why})` };
  }
  return { allow: true, host, address: addresses[0]!, port };
}

/** Splits a CONNECT authority `host:port`; IPv6 literals (`[::1]:443`) keep their brackets off. */
export function splitAuthority(authority: string): { host: string; port: number } | null {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]+)):(\d{1,5})$/.exec(authority);
  if (!match) return null;
  return { host: match[1] ?? match[2]!, port: Number(match[3]) };
}
