import { z } from "zod";
import { count, port } from "./fields.js";

/**
 * The network policies (docs/architecture.md "Network plumbing"): `off` has no NIC at all; `egress` reaches out
 * over TCP/UDP with DNS; `egress+published-ports` also takes host→guest ports. No policy
 * reaches the host itself (its loopback, its addresses) or link-local 169.254/16.
 */
export const NetworkPolicy = z.enum(["off", "egress", "egress+published-ports"]);

/**
 * An allowlist entry: `example.org` (that name) or `*.example.org` (its subdomains, not
 * the apex); lowercase DNS labels of letters, digits and inner hyphens.
 */
export const DOMAIN_PATTERN =
  /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const MAX_ALLOWED_DOMAINS = 256;

export const allowedDomains = z
  .array(
    z
      .string()
      .max(253)
      .regex(
        DOMAIN_PATTERN,
        'a domain pattern is a lowercase name like "example.org" or "*.example.org" (subdomains only): letters, digits, hyphens and dots',
      ),
  )
  .max(MAX_ALLOWED_DOMAINS)
  .default([])
  .describe(
    "Limit egress to these domains (HTTP and HTTPS through a host proxy; no DNS, no other traffic). Needs network_policy egress or egress+published-ports.",
  );

/** A guest port forwarded from the host (always its 127.0.0.1). */
export const ActivePublishedPort = z.object({
  guest_port: port(),
  host_port: port(),
  host_address: z.string().describe('Where the host listens: "127.0.0.1".'),
});

export const RefusalCounts = z.object({
  refused_total: count(),
  refused_by_reason: z
    .record(z.string(), count())
    .describe("Frames and proxy requests the network guard refused, by reason."),
});

/** What a running sandbox's network is; `policy` `off` leaves the rest empty. */
export const NetworkStatus = z.object({
  policy: NetworkPolicy,
  guest_address: z.string().nullable().describe("The guest's IPv4 address (10.0.2.15)."),
  gateway: z.string().nullable(),
  dns: z.array(z.string()).describe("The guest's resolvers; none under an allowlist."),
  allowed_domains: z.array(z.string()),
  published_ports: z.array(ActivePublishedPort),
  refusals: RefusalCounts,
});
