import type { z } from "zod";
import type { NetworkStatus } from "../contract/network.js";
import type { ShimNetwork } from "../guest/ops/index.js";

/** The contract's view of what a shim reports (the proxy's port stays internal). */
export function networkStatus(info: ShimNetwork): z.output<typeof NetworkStatus> {
  return {
    policy: info.policy,
    guest_address: info.guest_address,
    gateway: info.gateway,
    dns: info.dns,
    allowed_domains: info.allowed_domains,
    published_ports: info.published_ports,
    refusals: info.refusals,
  };
}

/** What a sandbox without a running network (policy off, or not started) reports. */
export function noNetwork(
  policy: z.output<typeof NetworkStatus>["policy"],
  allowedDomains: readonly string[] = [],
): z.output<typeof NetworkStatus> {
  return {
    policy,
    guest_address: null,
    gateway: null,
    dns: [],
    allowed_domains: [...allowedDomains],
    published_ports: [],
    refusals: { refused_total: 0, refused_by_reason: {} },
  };
}
