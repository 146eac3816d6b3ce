import { z } from "zod";
import { defineOp, guestPath, guestText, resultFrame, SIGNALS } from "./op.js";

/** The agent's connection-level ops (protocol/README.md "Requests"). */

export const HelloResultSchema = resultFrame({
  protocol: z.number().int(),
  agent_version: guestText(64),
  pid1: z.boolean(),
  init_errors: z.array(guestText()).max(64).default([]),
});
export type HelloResult = z.output<typeof HelloResultSchema>;

export const hello = defineOp(
  "hello",
  z.strictObject({
    time_ms: z.number().int().nonnegative().optional(),
    hostname: z.string().max(64).optional(),
    workspace_root: guestPath.optional(),
  }),
  HelloResultSchema,
);

export const EmptyResultSchema = resultFrame({});

export const shutdown = defineOp(
  "shutdown",
  z.strictObject({ power_off: z.boolean() }),
  EmptyResultSchema,
);

/** Signals the process group of the exec on `target_channel` of the same connection. */
export const signal = defineOp(
  "signal",
  z.strictObject({
    target_channel: z.number().int().min(0).max(0xffffffff),
    signal: z.enum(SIGNALS),
  }),
  EmptyResultSchema,
);
