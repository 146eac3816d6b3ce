import type { ExitRecord } from "./messages.js";

/**
 * What one request may cost the host, whatever the guest does: how long it may stay
 * pending and how many bytes of output it may send. The guest is untrusted, so the host
 * (the shim for every client, and each client for itself) enforces these on its own side
 * instead of relying on the agent's timeouts and truncation.
 */

/**
 * Time a guest gets past a request's own timeout to send its terminal frame: the agent's
 * kill, its drain of the pipes and a `sync` of the workspace disk, which on a loaded TCG
 * host can take seconds. Past it, the guest is taken to be stuck or hostile.
 */
export const REPLY_GRACE_MS = 20_000;

/** How long a request without a timeout of its own (file operations...) may stay pending. */
export const DEFAULT_REQUEST_DEADLINE_MS = 5 * 60_000;

/** The agent's default and largest `max_output_bytes` per stream (protocol/README.md). */
export const DEFAULT_MAX_OUTPUT_BYTES = 1 << 20;
export const MAX_OUTPUT_BYTES_LIMIT = 1 << 30;

/** Node runs a timer longer than this (about 24.8 days) at once, so deadlines stay below. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A file listing streams whole, however large; this bounds it (64 MiB). */
export const MAX_LISTING_BYTES = 64 << 20;

export interface RequestBounds {
  /** From sending the request until its terminal frame must have arrived. */
  deadlineMs: number;
  /** Bytes of `stdout` / `stderr` frames the host accepts on the request's channel. */
  stdoutCap: number;
  stderrCap: number;
}

export interface DeadlinePolicy {
  /** @default REPLY_GRACE_MS */
  graceMs?: number;
  /** For requests without a timeout of their own. @default DEFAULT_REQUEST_DEADLINE_MS */
  defaultDeadlineMs?: number;
}

/** The bounds of one request, read from the request itself (sent by the host). */
export function requestBounds(
  message: Record<string, unknown>,
  policy: DeadlinePolicy = {},
): RequestBounds {
  const graceMs = policy.graceMs ?? REPLY_GRACE_MS;
  const defaultDeadlineMs = policy.defaultDeadlineMs ?? DEFAULT_REQUEST_DEADLINE_MS;
  if (message.op === "exec") {
    const timeoutMs = boundedInteger(message.timeout_ms, 1, Number.MAX_SAFE_INTEGER);
    const cap =
      boundedInteger(message.max_output_bytes, 0, MAX_OUTPUT_BYTES_LIMIT) ??
      DEFAULT_MAX_OUTPUT_BYTES;
    return {
      deadlineMs: Math.min((timeoutMs ?? defaultDeadlineMs) + graceMs, MAX_TIMER_MS),
      stdoutCap: cap,
      stderrCap: cap,
    };
  }
  const deadlineMs = Math.min(defaultDeadlineMs + graceMs, MAX_TIMER_MS);
  if (message.op === "file_read") {
    const cap =
      boundedInteger(message.max_bytes, 1, MAX_OUTPUT_BYTES_LIMIT) ?? DEFAULT_MAX_OUTPUT_BYTES;
    return { deadlineMs, stdoutCap: cap, stderrCap: 0 };
  }
  return { deadlineMs, stdoutCap: MAX_LISTING_BYTES, stderrCap: 0 };
}

function boundedInteger(value: unknown, min: number, max: number): number | undefined {
  return Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max
    ? (value as number)
    : undefined;
}

/**
 * The exit record the host reports for an exec whose guest missed its deadline: a timeout,
 * like one the agent reports itself (exit status 124 to callers).
 */
export function timedOutExit(
  elapsedMs: number,
  seen: { stdout_bytes: number; stderr_bytes: number },
): ExitRecord & Record<string, unknown> {
  return {
    type: "exit",
    exit_code: null,
    signal: "KILL",
    timed_out: true,
    stdout_truncated: false,
    stderr_truncated: false,
    stdout_bytes: seen.stdout_bytes,
    stderr_bytes: seen.stderr_bytes,
    duration_ms: Math.round(elapsedMs),
  };
}
