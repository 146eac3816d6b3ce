/** Contract defaults (CONTRACT.md): one place, used by every surface. */
export const DEFAULTS = {
  vcpu_count: 1,
  mem_mib: 1024,
  timeout_seconds: 30,
  ttl_seconds: 600,
} as const;

/** Bounds that do not depend on the host. Host-dependent ones are checked by the core. */
export const LIMITS = {
  min_mem_mib: 128,
  max_timeout_seconds: 24 * 3600,
  max_ttl_seconds: 7 * 24 * 3600,
  /** Bytes of stdout and of stderr kept per command; the rest is counted and dropped. */
  max_output_bytes: 1 << 20,
  /** A command's argv as JSON; it travels in one control message to the guest. */
  max_command_bytes: 48 * 1024,
} as const;
