/**
 * STAND-IN for net-guard's `src/network/` (same names and shapes, see its index.ts) until
 * that lands: frames pass unjudged and there is no allowlist proxy. Replaced by imports
 * of `../network/index.js`; nothing outside the shim may import this.
 */
import type { Readable, Writable } from "node:stream";
import { PyroError } from "../contract/errors.js";

export const GUEST_NETWORK = {
  address: "10.0.2.15",
  prefix_len: 24,
  gateway: "10.0.2.2",
  dns: "10.0.2.3",
  network: "10.0.2.0",
} as const;

export interface RefusalCounters {
  refused_total: number;
  refused_by_reason: Record<string, number>;
}

export class RefusalLog {
  constructor(private readonly write: (line: string) => void) {}
  counters(): RefusalCounters {
    return { refused_total: 0, refused_by_reason: {} };
  }
}

export interface GuardPolicy {
  allowlist_proxy_port: number | null;
  published_guest_ports: number[];
}

export interface GuestFrameRelay {
  setPublishedGuestPorts(ports: readonly number[]): void;
  counters(): { frames_passed: number; frames_refused: number; frames_dropped: number };
  close(): void;
}

export function startGuestFrameRelay(options: {
  fromGuest: Readable;
  toNetwork: Writable;
  policy: GuardPolicy;
  refusals: RefusalLog;
}): GuestFrameRelay {
  // Same framing on both sides, so a byte pipe passes every frame unchanged.
  options.fromGuest.pipe(options.toNetwork);
  return {
    setPublishedGuestPorts: () => {},
    counters: () => ({ frames_passed: 0, frames_refused: 0, frames_dropped: 0 }),
    close: () => options.fromGuest.unpipe(options.toNetwork),
  };
}

export interface AllowlistProxy {
  port: number;
  counters(): { proxy_allowed: number; proxy_refused: number };
  close(): Promise<void>;
}

export function startAllowlistProxy(_options: {
  allowed_domains: readonly string[];
  refusals: RefusalLog;
}): Promise<AllowlistProxy> {
  return Promise.reject(new PyroError("unavailable", "the allowlist proxy is not built yet"));
}

export function proxyEnvironment(proxyPort: number): Record<string, string> {
  const url = `http://${GUEST_NETWORK.gateway}:${proxyPort}`;
  return { HTTP_PROXY: url, HTTPS_PROXY: url, http_proxy: url, https_proxy: url };
}

export function aptProxyConfig(proxyPort: number): string {
  const url = `http://${GUEST_NETWORK.gateway}:${proxyPort}`;
  return `Acquire::http::Proxy "${url}";\nAcquire::https::Proxy "${url}";\n`;
}
