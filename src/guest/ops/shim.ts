import { z } from "zod";
import { defineOp, guestText, resultFrame } from "./op.js";
import { EmptyResultSchema } from "./system.js";

/**
 * The shim's own ops, answered by the shim itself instead of forwarded to the agent
 * (`src/shim/supervisor.ts`). Their replies are parsed like the agent's: a client cannot
 * tell a broken shim from a broken guest, and neither is trusted to be well formed.
 */

export const ShimStatusSchema = z.object({
  shim_pid: z.number().int().positive(),
  vmm_pid: z.number().int().nullable(),
  state: z.enum(["booting", "ready", "stopping", "exited", "failed"]),
  acceleration: z.enum(["kvm", "tcg"]),
  agent_version: guestText(64).nullable(),
  timings: z.object({
    vmm_start_ms: z.number().nonnegative().optional(),
    boot_ms: z.number().nonnegative().optional(),
  }),
  /** Carries the console tail of a failed boot. */
  error: guestText(64 * 1024).nullable(),
  /** Why the VM ended: `ttl`, `stop requested`, `owning client disconnected`, a signal... */
  stop_reason: guestText(64 * 1024).nullable(),
  updated_at: z.string().max(64),
});
/** The shim's view of its VM, kept current in `shim.json` (written atomically). */
export type ShimStatus = z.infer<typeof ShimStatusSchema>;
export type ShimState = ShimStatus["state"];

const statusResult = resultFrame(ShimStatusSchema.shape);

export const shimStatus = defineOp("shim.status", z.strictObject({}), statusResult);

/** Answers once the VM is ready or has failed. */
export const shimWaitReady = defineOp("shim.wait_ready", z.strictObject({}), statusResult);

/** Ties the VM's life to this connection: if it closes, the shim deletes the VM. */
export const shimClaim = defineOp("shim.claim", z.strictObject({}), EmptyResultSchema);

/** Powers the VM off (with `remove`, its state directory goes too); answers once it is gone. */
export const shimStop = defineOp(
  "shim.stop",
  z.strictObject({ remove: z.boolean() }),
  statusResult,
);
