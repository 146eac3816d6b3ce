import { z } from "zod";

/** What an exec request may ask of the agent (protocol/README.md, `exec`). */
export interface ExecRequest {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  timeout_ms?: number;
  max_output_bytes?: number;
  /** sync(2) in the guest before the exit record: the command's writes survive a crash. */
  sync?: boolean;
}

/**
 * The agent's exit record. It comes from the untrusted guest, so it is parsed with bounds
 * rather than cast: a malformed record is a guest error, not a host crash.
 */
export const ExitRecordSchema = z.object({
  type: z.literal("exit"),
  exit_code: z.number().int().min(0).max(255).nullable(),
  signal: z
    .string()
    .max(16)
    .regex(/^[A-Z0-9]+$/)
    .nullable(),
  timed_out: z.boolean(),
  stdout_truncated: z.boolean(),
  stderr_truncated: z.boolean(),
  stdout_bytes: z.number().int().nonnegative(),
  stderr_bytes: z.number().int().nonnegative(),
  duration_ms: z.number().nonnegative(),
});
export type ExitRecord = z.infer<typeof ExitRecordSchema>;

export const HelloResultSchema = z.object({
  type: z.literal("result"),
  protocol: z.number().int(),
  agent_version: z.string().max(64),
  pid1: z.boolean(),
  init_errors: z.array(z.string().max(4096)).max(64).default([]),
});
export type HelloResult = z.infer<typeof HelloResultSchema>;

export const AgentErrorSchema = z.object({
  type: z.literal("error"),
  code: z.string().max(64),
  message: z.string().max(4096),
  errno: z.number().int().optional(),
});
