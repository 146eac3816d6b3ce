import { z } from "zod";
import {
  argv,
  capFromField,
  defineOp,
  env,
  guestPath,
  processName,
  resultFrame,
  unixMs,
  waitState,
} from "./op.js";

/** The agent's service ops (protocol/README.md "Services", issue8-protocol.md). */

export const MAX_SERVICES = 32;
export const DEFAULT_MAX_LOG_BYTES = 4 << 20;
export const DEFAULT_STOP_GRACE_MS = 5_000;
export const DEFAULT_LOG_TAIL_LINES = 200;
export const DEFAULT_LOG_MAX_BYTES = 1 << 20;
export const MAX_LOG_READ_BYTES = 4 << 20;

export const serviceStart = defineOp(
  "service_start",
  z.strictObject({
    name: processName,
    argv,
    env: env.optional(),
    cwd: guestPath.optional(),
    /** Absolute, no `..`. @default "/run/pyro-services" */
    log_dir: guestPath.optional(),
    /** Per stream, before the file is rotated to `NAME.stdout.1`. @default 4194304 */
    max_log_bytes: z
      .number()
      .int()
      .min(4096)
      .max(64 << 20)
      .optional(),
  }),
  resultFrame({ name: processName, pid: z.number().int().positive(), started_at_ms: unixMs }),
);

export const ServiceEntrySchema = z.object({
  name: processName,
  pid: z.number().int().positive(),
  ...waitState,
  started_at_ms: unixMs,
  ended_at_ms: unixMs.nullable(),
});
export type ServiceEntry = z.infer<typeof ServiceEntrySchema>;

export const serviceList = defineOp(
  "service_list",
  z.strictObject({}),
  resultFrame({ services: z.array(ServiceEntrySchema).max(MAX_SERVICES) }),
);

/** The reply waits for the reap: TERM, then KILL after `grace_ms`. */
export const serviceStop = defineOp(
  "service_stop",
  z.strictObject({ name: processName, grace_ms: z.number().int().min(0).max(60_000).optional() }),
  resultFrame({
    name: processName,
    ...waitState,
    state: z.literal("exited"),
    /** KILL was needed. */
    killed: z.boolean(),
  }),
  // No timeout of its own: the grace (at most 60 s) is far below the default deadline.
);

const logCap = capFromField("max_bytes", DEFAULT_LOG_MAX_BYTES, 1, MAX_LOG_READ_BYTES);

/** `stdout` frames with the stdout log's tail, `stderr` frames with stderr's, then this. */
export const serviceLogs = defineOp(
  "service_logs",
  z.strictObject({
    name: processName,
    tail_lines: z.number().int().min(1).max(100_000).optional(),
    max_bytes: z.number().int().min(1).max(MAX_LOG_READ_BYTES).optional(),
  }),
  resultFrame({
    name: processName,
    stdout_truncated: z.boolean(),
    stderr_truncated: z.boolean(),
  }),
  { stdoutCap: logCap, stderrCap: logCap },
);
