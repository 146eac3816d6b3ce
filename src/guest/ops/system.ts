import { randomBytes } from "node:crypto";
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

/** Bytes of `hello.entropy`: the agent mixes them into the guest kernel's RNG. */
export const HELLO_ENTROPY_BYTES = 64;

/** Fresh `hello.entropy`; send it on every boot (cold ones too: harmless there). */
export function helloEntropy(): string {
  return randomBytes(HELLO_ENTROPY_BYTES).toString("base64");
}

export const hello = defineOp(
  "hello",
  z.strictObject({
    time_ms: z.number().int().nonnegative().optional(),
    hostname: z.string().max(64).optional(),
    workspace_root: guestPath.optional(),
    // Canonical base64 of exactly 64 bytes: clones of one memory template share the
    // template's RNG state until the agent reseeds from these (agent/src/entropy.h).
    entropy: z
      .string()
      .regex(/^[A-Za-z0-9+/]{85}[AQgw]==$/, "entropy must be 64 bytes in canonical base64")
      .optional(),
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
