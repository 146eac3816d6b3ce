import { createHash } from "node:crypto";
import { accessSync, constants } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { delimiter, isAbsolute, join } from "node:path";
import { z } from "zod";
import { vmFiles, type ShimLaunchConfig } from "../shim/launch.js";
import { readJsonIfExists, writeJsonAtomic } from "../util/fs.js";
import { packageVersion } from "../util/version.js";
import { QEMU_BINARY } from "../vmm/qemu.js";

/**
 * A paused VM's saved state: `vmstate` (device and CPU state) and `memory.ram` (its RAM)
 * in the VM's directory, plus `saved-state.json` saying what they were saved by. QEMU can
 * only restore a state into the same binary, machine, devices, memory size and CPUs, and
 * the guest's RAM only makes sense over the same kernel, agent and root image; so a resume
 * compares what the VM ran on when it was saved with what a boot would run on now, and
 * boots the disk instead when they differ (the note says which input changed).
 */

/** Bumped when what a saved state holds, or how it is restored, changes. */
const SAVED_STATE_FORMAT = 1;
const MIB = 2 ** 20;

const FileIdentity = z.object({
  path: z.string(),
  size: z.number(),
  mtime_ms: z.number(),
  ino: z.number(),
});
type FileIdentity = z.infer<typeof FileIdentity>;

export const SavedStateInputs = z.object({
  format: z.number(),
  /** QEMU's argv comes from pyro's code: another pyro version may give other devices. */
  pyro_version: z.string(),
  vmm: z.string(),
  vmm_binary: FileIdentity.nullable(),
  kernel: FileIdentity.nullable(),
  initrd: FileIdentity.nullable(),
  rootfs: FileIdentity.nullable(),
  vcpu_count: z.number(),
  mem_mib: z.number(),
  acceleration: z.string(),
  network: z.boolean(),
});
export type SavedStateInputs = z.infer<typeof SavedStateInputs>;

export const SavedStateMeta = z.object({
  key: z.string().regex(/^[0-9a-f]{64}$/),
  inputs: SavedStateInputs,
  saved_at: z.string().max(64),
  vmstate_bytes: z.number().int().positive(),
  memory_bytes: z.number().int().positive(),
});
export type SavedStateMeta = z.infer<typeof SavedStateMeta>;

/** What a VM of this launch config runs on, as far as restoring its state depends on it. */
export async function savedStateInputs(launch: ShimLaunchConfig): Promise<SavedStateInputs> {
  return {
    format: SAVED_STATE_FORMAT,
    pyro_version: packageVersion,
    vmm: launch.vmm,
    vmm_binary: launch.vmm === "qemu" ? await identity(onPath(QEMU_BINARY)) : null,
    kernel: await identity(launch.kernel_path),
    initrd: await identity(launch.initrd_path),
    rootfs: await identity(launch.rootfs_path),
    vcpu_count: launch.vcpu_count,
    mem_mib: launch.mem_mib,
    acceleration: launch.acceleration,
    network: launch.network != null,
  };
}

export function savedStateKey(inputs: SavedStateInputs): string {
  return createHash("sha256").update(JSON.stringify(inputs)).digest("hex");
}

/** Written by the shim once `vmstate` is complete: its presence says the save finished. */
export async function writeSavedState(
  dir: string,
  inputs: SavedStateInputs,
  memMib: number,
): Promise<SavedStateMeta> {
  const files = vmFiles(dir);
  const meta: SavedStateMeta = {
    key: savedStateKey(inputs),
    inputs,
    saved_at: new Date().toISOString(),
    vmstate_bytes: (await stat(files.vmstate)).size,
    memory_bytes: memMib * MIB,
  };
  await writeJsonAtomic(files.savedState, meta, 0o600, { createParent: false });
  return meta;
}

/** Whether the saved state in `dir` can be restored by a boot of `launch`, and if not why. */
export type SavedStateCheck = { usable: true } | { usable: false; reason: string };

export async function checkSavedState(
  dir: string,
  launch: ShimLaunchConfig,
): Promise<SavedStateCheck> {
  const files = vmFiles(dir);
  const raw = await readJsonIfExists<unknown>(files.savedState).catch(() => undefined);
  const meta = SavedStateMeta.safeParse(raw);
  if (!meta.success) return unusable("its saved state is missing or unreadable");
  const vmstate = await stat(files.vmstate).catch(() => undefined);
  if (vmstate?.size !== meta.data.vmstate_bytes)
    return unusable("its saved device state is missing or truncated");
  const memory = await stat(files.memory).catch(() => undefined);
  if (memory?.size !== meta.data.memory_bytes)
    return unusable("its saved memory file is missing or truncated");
  const now = await savedStateInputs(launch);
  if (savedStateKey(now) === meta.data.key) return { usable: true };
  return unusable(`it was saved under ${differences(meta.data.inputs, now)}`);
}

/** Removes a saved state: after a resume that could not use it, a stop or a reset. */
export async function discardSavedState(dir: string): Promise<void> {
  const files = vmFiles(dir);
  // The meta file first: a crash in between leaves no meta, which reads as no saved state.
  await rm(files.savedState, { force: true });
  await Promise.all([files.vmstate, files.memory].map((path) => rm(path, { force: true })));
}

/** Names the inputs that differ, e.g. "another QEMU binary, another kernel". */
export function differences(saved: SavedStateInputs, now: SavedStateInputs): string {
  const names: Record<keyof SavedStateInputs, string> = {
    format: "another saved-state format",
    pyro_version: `pyro ${saved.pyro_version} (this is ${now.pyro_version})`,
    vmm: `the ${saved.vmm} driver (now ${now.vmm})`,
    vmm_binary: "another QEMU binary",
    kernel: "another guest kernel",
    initrd: "another guest agent",
    rootfs: "another environment image",
    vcpu_count: "another vCPU count",
    mem_mib: "another memory size",
    acceleration: `${saved.acceleration} acceleration (now ${now.acceleration})`,
    network: "another network device setup",
  };
  const changed = (Object.keys(names) as (keyof SavedStateInputs)[]).filter(
    (field) => JSON.stringify(saved[field]) !== JSON.stringify(now[field]),
  );
  return changed.map((field) => names[field]).join(", ") || "other inputs";
}

function unusable(reason: string): SavedStateCheck {
  return { usable: false, reason };
}

async function identity(path: string): Promise<FileIdentity | null> {
  const stats = await stat(path).catch(() => undefined);
  if (!stats) return null;
  return { path, size: stats.size, mtime_ms: stats.mtimeMs, ino: stats.ino };
}

/** A bare command name resolved through PATH, as spawn would; the name itself if not found. */
function onPath(command: string): string {
  if (isAbsolute(command) || command.includes("/")) return command;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir || ".", command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return command;
}
