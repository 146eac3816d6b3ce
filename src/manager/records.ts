import { readFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../contract/errors.js";
import { readJsonIfExists, writeJsonAtomic } from "../util/fs.js";
import { pyroHome } from "../util/paths.js";
import { isProcessAlive } from "../util/process.js";
import { vmFiles, type ShimStatus } from "../shim/launch.js";

/** Where each kind of sandbox keeps its state directories. */
export function sandboxRoot(kind: "vms" | "workspaces"): string {
  return join(pyroHome(), kind);
}

const ID_PATTERN = /^(vm|ws)_[0-9a-f]{12}$/;

/** Ids come from callers (and models): check the shape before it touches a path. */
export function checkId(id: string, kind: "vm" | "workspace"): void {
  if (!ID_PATTERN.test(id)) {
    throw new PyroError(
      "not_found",
      `no ${kind} with id "${id}" (ids look like ${kind === "vm" ? "vm" : "ws"}_0123456789ab)`,
      {
        details: { [`${kind}_id`]: id },
      },
    );
  }
}

export async function readRecord<T>(dir: string): Promise<T | undefined> {
  return readJsonIfExists<T>(vmFiles(dir).record);
}

export async function writeRecord(dir: string, record: object): Promise<void> {
  await writeJsonAtomic(vmFiles(dir).record, record, 0o600, { createParent: false });
}

export async function listIds(kind: "vms" | "workspaces"): Promise<string[]> {
  const entries = await readdir(sandboxRoot(kind)).catch(() => [] as string[]);
  return entries.filter((e) => ID_PATTERN.test(e)).sort();
}

/** What the VM's processes say, as opposed to what its record says. */
export interface LiveState {
  shim: ShimStatus | undefined;
  shimAlive: boolean;
  vmmAlive: boolean;
}

export async function liveState(dir: string): Promise<LiveState> {
  const shim = await readJsonIfExists<ShimStatus>(vmFiles(dir).status);
  const running = shim !== undefined && shim.state !== "exited" && shim.state !== "failed";
  return {
    shim,
    shimAlive: running && ownsPid(shim.shim_pid, dir),
    vmmAlive: shim?.vmm_pid != null && ownsPid(shim.vmm_pid, dir),
  };
}

/** A live pid whose command line mentions this VM's directory (pids get reused). */
function ownsPid(pid: number, dir: string): boolean {
  if (!isProcessAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir);
  } catch {
    return false;
  }
}
