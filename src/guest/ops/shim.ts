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
  /** `paused`: the VM was saved to its directory (vmstate + RAM file) and the shim exited. */
  state: z.enum(["booting", "ready", "stopping", "exited", "failed", "paused"]),
  acceleration: z.enum(["kvm", "tcg"]),
  agent_version: guestText(64).nullable(),
  timings: z.object({
    /** Shim start to a controllable VMM (for a restore: to the guest running again). */
    vmm_start_ms: z.number().nonnegative().optional(),
    /** Then to an answering agent. */
    boot_ms: z.number().nonnegative().optional(),
    /** A warm boot's part of vmm_start_ms: QEMU start, state load and `cont`. */
    restore_ms: z.number().nonnegative().optional(),
    /** Pause: guest stopped, state saved, VMM gone. */
    pause_ms: z.number().nonnegative().optional(),
  }),
  /** `warm`: restored from a template or a saved state. Absent in older status files: cold. */
  boot_mode: z.enum(["cold", "warm"]).optional(),
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

/**
 * Saves the VM into its directory and ends the shim, keeping the VM's files: waits until
 * no request is in flight (else `conflict`), stops the guest's CPUs, writes its device
 * state, quits the VMM. Answers with the final status (`paused`). A driver that cannot
 * save answers `unavailable` and the VM runs on.
 */
export const shimPause = defineOp("shim.pause", z.strictObject({}), statusResult);

/**
 * Copies the running VM into `target_dir` (an absolute path of a fresh sandbox directory):
 * its device state, RAM file and state disk, taken while the guest's CPUs are stopped; then
 * the VM runs on. The copy boots like a paused VM.
 */
export const shimFork = defineOp(
  "shim.fork",
  z.strictObject({ target_dir: z.string().min(2).max(4096).startsWith("/") }),
  resultFrame({
    /** How long the parent's guest was stopped. */
    stopped_ms: z.number().nonnegative(),
  }),
);

const port = z.number().int().min(1).max(65535);
const ipv4Text = z.string().max(15);

export const ShimPublishedPortSchema = z.object({
  guest_port: port,
  host_port: port,
  host_address: ipv4Text,
});

/** The VM's network as the shim runs it; `policy` `off` (no NIC) leaves the rest empty. */
export const ShimNetworkSchema = z.object({
  policy: z.enum(["off", "egress", "egress+published-ports"]),
  guest_address: ipv4Text.nullable(),
  prefix_len: z.number().int().min(0).max(32).nullable(),
  gateway: ipv4Text.nullable(),
  dns: z.array(ipv4Text).max(3),
  allowed_domains: z.array(z.string().max(253)).max(1024),
  /** The allowlist proxy's port on the host's 127.0.0.1 (the guest's gateway). */
  proxy_port: port.nullable(),
  published_ports: z.array(ShimPublishedPortSchema).max(1024),
  refusals: z.object({
    refused_total: z.number().int().nonnegative(),
    refused_by_reason: z.record(z.string().max(64), z.number().int().nonnegative()),
  }),
});
export type ShimNetwork = z.infer<typeof ShimNetworkSchema>;
export type ShimPublishedPort = z.infer<typeof ShimPublishedPortSchema>;

export const shimNetworkInfo = defineOp(
  "shim.network_info",
  z.strictObject({}),
  resultFrame(ShimNetworkSchema.shape),
);

/**
 * Forwards the host's 127.0.0.1:host_port to the guest's guest_port; `host_port: null`
 * picks a free one. A host port in use answers `conflict`.
 */
export const shimPublishPort = defineOp(
  "shim.publish_port",
  z.strictObject({ guest_port: port, host_port: port.nullable() }),
  resultFrame(ShimPublishedPortSchema.shape),
);

/** Removes a forward; one that does not exist is not an error (stop may repeat). */
export const shimUnpublishPort = defineOp(
  "shim.unpublish_port",
  z.strictObject({ host_port: port }),
  EmptyResultSchema,
);
