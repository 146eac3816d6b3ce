import { z } from "zod";

/**
 * An `allowed_domains` entry: `example.org` (that name only) or `*.example.org` (its
 * subdomains, not the apex). Lowercase DNS labels of 1-63 letters, digits and inner
 * hyphens; an IPv4 address listed as is also matches this form.
 */
export const DOMAIN_PATTERN =
  /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export const MAX_DOMAIN_CHARS = 253;
/** An allowlist is a short list of registries and hosts, not a blocklist in reverse. */
export const MAX_ALLOWED_DOMAINS = 256;

export const DOMAIN_PATTERN_HINT =
  'use a lowercase name like "example.org" or "*.example.org" (subdomains only): letters, digits, hyphens and dots';

/** One entry, for the workspace create schema (`allowed_domains: z.array(domainPattern)`). */
export const domainPattern = z
  .string()
  .max(MAX_DOMAIN_CHARS)
  .regex(DOMAIN_PATTERN, `not a domain pattern; ${DOMAIN_PATTERN_HINT}`)
  .describe('A domain the guest may reach through the proxy: "example.org" or "*.example.org".');

export const allowedDomains = z
  .array(domainPattern)
  .max(MAX_ALLOWED_DOMAINS)
  .describe(
    "Limit egress to these domains over HTTP(S), through a host-side proxy; no DNS or other traffic.",
  );
