import { opNamed, UNKNOWN_OP_OUTPUT, type ExitRecord } from "./ops/index.js";

export {
  DEFAULT_MAX_OUTPUT_BYTES,
  MAX_LISTING_BYTES,
  MAX_OUTPUT_BYTES_LIMIT,
} from "./ops/index.js";

/**
 * What one request may cost the host, whatever the guest does: how long it may stay
 * pending and how many bytes of output it may send. The guest is untrusted, so the host
 * (the shim for every client, and each client for itself) enforces these on its own side
 * instead of relying on the agent's timeouts and truncation. Each op's definition
 * (`ops/`) says what it may stream and whether it has a timeout of its own.
 */

/**
 * Time a guest gets past a request's own timeout to send its terminal frame: the agent's
 * kill, its drain of the pipes and a `sync` of the workspace disk, which on a loaded TCG
 * host can take seconds. Past it, the guest is taken to be stuck or hostile.
 */
export const REPLY_GRACE_MS = 20_000;

/** How long a request without a timeout of its own (file operations...) may stay pending. */
export const DEFAULT_REQUEST_DEADLINE_MS = 5 * 60_000;

/** Node runs a timer longer than this (about 24.8 days) at once, so deadlines stay below. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

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
  const output = opNamed(message.op)?.output ?? UNKNOWN_OP_OUTPUT;
  const timeoutMs = output.timeoutMs?.(message) ?? defaultDeadlineMs;
  return {
    deadlineMs: Math.min(timeoutMs + graceMs, MAX_TIMER_MS),
    stdoutCap: output.stdoutCap(message),
    stderrCap: output.stderrCap(message),
  };
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
