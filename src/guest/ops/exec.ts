import { z } from "zod";
import {
  argv,
  boundedInteger,
  capFromField,
  count,
  defineOp,
  env,
  exitCode,
  guestPath,
  signalName,
} from "./op.js";

/** The agent's default and largest `max_output_bytes` per stream (protocol/README.md). */
export const DEFAULT_MAX_OUTPUT_BYTES = 1 << 20;
export const MAX_OUTPUT_BYTES_LIMIT = 1 << 30;

export const ExecRequestSchema = z.strictObject({
  argv,
  env: env.optional(),
  cwd: guestPath.optional(),
  timeout_ms: z.number().int().positive().optional(),
  max_output_bytes: z.number().int().min(0).max(MAX_OUTPUT_BYTES_LIMIT).optional(),
  /** The process reads `stdin` frames until `stdin_eof`. */
  stdin: z.boolean().optional(),
  /** sync(2) in the guest before the exit record: the command's writes survive a crash. */
  sync: z.boolean().optional(),
});
/** What an exec request may ask of the agent (protocol/README.md, `exec`). */
export type ExecRequest = z.input<typeof ExecRequestSchema>;

/**
 * The agent's exit record. It comes from the untrusted guest, so it is parsed with bounds
 * rather than cast: a malformed record is a guest error, not a host crash.
 */
export const ExitRecordSchema = z.object({
  type: z.literal("exit"),
  exit_code: exitCode.nullable(),
  signal: signalName.nullable(),
  timed_out: z.boolean(),
  stdout_truncated: z.boolean(),
  stderr_truncated: z.boolean(),
  stdout_bytes: count,
  stderr_bytes: count,
  duration_ms: z.number().nonnegative(),
});
export type ExitRecord = z.infer<typeof ExitRecordSchema>;

const outputCap = capFromField(
  "max_output_bytes",
  DEFAULT_MAX_OUTPUT_BYTES,
  0,
  MAX_OUTPUT_BYTES_LIMIT,
);

export const exec = defineOp("exec", ExecRequestSchema, ExitRecordSchema, {
  stdoutCap: outputCap,
  stderrCap: outputCap,
  timeoutMs: (message) => boundedInteger(message.timeout_ms, 1, Number.MAX_SAFE_INTEGER),
});
