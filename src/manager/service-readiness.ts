import type { ReadinessValue } from "../contract/services.js";
import { sleep } from "../util/process.js";
import type { ProbeResult } from "./service-agent.js";

/**
 * Readiness checks run in the guest as ordinary short commands (no agent op of their
 * own): what the service sees from inside its VM is what counts. Only tools of a minimal
 * Debian are used: `test`, `sh`, and bash's `/dev/tcp`.
 */

/** A TCP connect that fails or succeeds; the descriptor closes as bash exits. */
const TCP_SCRIPT = 'exec 3<>"/dev/tcp/$0/$1"';

/**
 * An HTTP/1.0 GET over bash's /dev/tcp; ready on a 2xx or 3xx status line. The status
 * line is echoed on failure so the error can say what the server answered.
 */
const HTTP_SCRIPT = [
  'exec 3<>"/dev/tcp/$0/$1" || exit 1',
  'printf \'GET %s HTTP/1.0\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n\' "$2" "$3" >&3',
  "IFS= read -r status <&3",
  // Read (a bounded part of) the rest: closing mid-response makes servers such as
  // python's http.server log a broken-pipe traceback into the service's own log.
  "for ((i = 0; i < 1000; i++)); do IFS= read -r -t 1 _ <&3 || break; done",
  'case "$status" in "HTTP/"*" "[23][0-9][0-9]*) exit 0 ;; esac',
  "printf 'HTTP status line: %s\\n' \"${status%$'\\r'}\" >&2",
  "exit 1",
].join("\n");

/** The guest command that answers one readiness check by its exit status. */
export function readinessArgv(readiness: ReadinessValue): string[] {
  switch (readiness.type) {
    case "file":
      return ["test", "-e", readiness.path];
    case "tcp": {
      const { host, port } = splitAddress(readiness.address);
      return ["bash", "-c", TCP_SCRIPT, host, port];
    }
    case "http": {
      const url = new URL(readiness.url);
      const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
      const port = url.port || "80";
      return ["bash", "-c", HTTP_SCRIPT, host, port, `${url.pathname}${url.search}`, url.host];
    }
    case "command":
      return ["sh", "-c", readiness.command];
  }
}

/** "HOST:PORT", with "[v6]:PORT" for IPv6 literals. */
export function splitAddress(address: string): { host: string; port: string } {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  return { host, port: address.slice(colon + 1) };
}

export function describeReadiness(readiness: ReadinessValue): string {
  switch (readiness.type) {
    case "file":
      return `file ${readiness.path} exists`;
    case "tcp":
      return `tcp ${readiness.address} accepts`;
    case "http":
      return `http ${readiness.url} answers 2xx/3xx`;
    case "command":
      return `command \`${readiness.command}\` exits 0`;
  }
}

export interface ReadinessLoop {
  /** One check: ready when `exit_code` is 0. */
  probe: (timeoutMs: number) => Promise<ProbeResult>;
  /** Whether the service is still alive; a dead one can never become ready. */
  stillRunning: () => Promise<boolean>;
  timeoutMs: number;
  intervalMs: number;
  now?: () => number;
  wait?: (ms: number) => Promise<void>;
}

export type ReadinessOutcome =
  | { ready: true; checks: number }
  | { ready: false; reason: "timeout" | "exited"; lastError: string; checks: number };

/** Longest single check; a hung server must not use up the whole wait in one go. */
const MAX_PROBE_MS = 5_000;
const MIN_PROBE_MS = 500;

/**
 * Checks until ready, until the deadline, or until the service has died. The last
 * check's output is kept so a failure can say what the check saw.
 */
export async function waitUntilReady(loop: ReadinessLoop): Promise<ReadinessOutcome> {
  const now = loop.now ?? Date.now;
  const wait = loop.wait ?? sleep;
  const deadline = now() + loop.timeoutMs;
  let lastError = "no check ran";
  for (let checks = 1; ; checks += 1) {
    const left = deadline - now();
    const probeMs = Math.min(MAX_PROBE_MS, Math.max(MIN_PROBE_MS, left));
    const result = await loop.probe(probeMs);
    if (result.exit_code === 0) return { ready: true, checks };
    lastError = result.output || `check exited with ${result.exit_code ?? "a signal"}`;
    if (!(await loop.stillRunning())) return { ready: false, reason: "exited", lastError, checks };
    if (now() + loop.intervalMs > deadline)
      return { ready: false, reason: "timeout", lastError, checks };
    await wait(loop.intervalMs);
  }
}
