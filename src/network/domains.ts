import { isIP } from "node:net";
import { PyroError } from "../contract/errors.js";

/**
 * An allowlist entry: `example.org` (that name only) or `*.example.org` (its subdomains,
 * not the apex). Lowercase DNS labels of 1-63 letters, digits and inner hyphens.
 */
export const DOMAIN_PATTERN =
  /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

const MAX_DOMAIN_CHARS = 253;
/** An allowlist is a short list of registries and hosts, not a blocklist in reverse. */
export const MAX_ALLOWED_DOMAINS = 256;

/** Validates allowed_domains; returns them without duplicates, or throws invalid_argument. */
export function parseDomainPatterns(patterns: readonly string[]): string[] {
  if (patterns.length > MAX_ALLOWED_DOMAINS)
    throw new PyroError(
      "invalid_argument",
      `allowed_domains has ${patterns.length} entries; at most ${MAX_ALLOWED_DOMAINS} are accepted`,
      { details: { field: "allowed_domains", max_items: MAX_ALLOWED_DOMAINS } },
    );
  for (const pattern of patterns) {
    if (pattern.length > MAX_DOMAIN_CHARS || !DOMAIN_PATTERN.test(pattern))
      throw new PyroError(
        "invalid_argument",
        `allowed domain ${JSON.stringify(pattern.slice(0, 300))} is not a domain pattern; use a lowercase name like "example.org" or "*.example.org" (subdomains only): letters, digits, hyphens and dots`,
        { details: { field: "allowed_domains", value: pattern.slice(0, 300) } },
      );
  }
  return [...new Set(patterns)];
}

/**
 * Whether `host` (from a request) is on the list. An IP literal matches only when listed
 * as is: a wildcard never admits an address.
 */
export function domainAllowed(patterns: readonly string[], host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, "");
  if (isIP(name)) return patterns.includes(name);
  return patterns.some((pattern) =>
    pattern.startsWith("*.") ? name.endsWith(pattern.slice(1)) : name === pattern,
  );
}
