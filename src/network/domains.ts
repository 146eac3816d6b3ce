import { isIP } from "node:net";
import { PyroError } from "../contract/errors.js";
import { DOMAIN_PATTERN, MAX_ALLOWED_DOMAINS } from "../contract/network.js";

export { DOMAIN_PATTERN, MAX_ALLOWED_DOMAINS };

/** The pattern is the contract's (`allowed_domains`), so create and the proxy agree. */
const MAX_DOMAIN_CHARS = 253;
const DOMAIN_PATTERN_HINT =
  'use a lowercase name like "example.org" or "*.example.org" (subdomains only): letters, digits, hyphens and dots';

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
        `allowed domain ${JSON.stringify(pattern.slice(0, 300))} is not a domain pattern; ${DOMAIN_PATTERN_HINT}`,
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
