import { rm } from "node:fs/promises";
import { PyroError } from "../contract/errors.js";
import { runChecked, sleep } from "../util/process.js";
import type { VmmHandle } from "../vmm/driver.js";
import { writeSavedState, type SavedStateInputs } from "../vmstate/saved-state.js";
import { vmFiles } from "./launch.js";

/**
 * Saving a running VM, for the shim's pause and fork (src/shim/supervisor.ts): the
 * guest's CPUs stop, its device state goes to `vmstate` (its RAM is already in its own
 * file, QEMU `share=on`), and `saved-state.json` is written last, so its presence means
 * the save is complete (src/vmstate/saved-state.ts).
 */

/** How long a pause or fork waits for requests in flight to end before it refuses. */
export const QUIESCE_TIMEOUT_MS = 10_000;
const QUIESCE_POLL_MS = 10;

/** A VMM handle that can save and continue its VM (QEMU's). */
export type SaveableVmm = VmmHandle & Required<Pick<VmmHandle, "saveState" | "resume">>;

/** The handle as a saveable one, or `unavailable` saying what to do instead. */
export function saveable(
  vmm: VmmHandle,
  driver: string,
  memoryPath: string | null | undefined,
): SaveableVmm {
  if (vmm.saveState && vmm.resume && memoryPath) return vmm as SaveableVmm;
  throw new PyroError(
    "unavailable",
    `the ${driver} driver cannot save a running VM (only QEMU can); stop it instead`,
  );
}

/** Waits until `inFlight()` is 0, at most `timeoutMs`; then `conflict` with the count. */
export async function waitUntilIdle(
  inFlight: () => number,
  timeoutMs = QUIESCE_TIMEOUT_MS,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (inFlight() > 0) {
    if (performance.now() > deadline) {
      throw new PyroError(
        "conflict",
        `${inFlight()} request(s) still running in the VM after ${timeoutMs / 1000} s; wait for them (or stop what runs) and try again`,
      );
    }
    await sleep(QUIESCE_POLL_MS);
  }
}

/** What a save needs to know of the VM besides its handle. */
export interface SaveSpec {
  inputs: Promise<SavedStateInputs>;
  memMib: number;
}

/**
 * Stops the guest and writes its state into `dir`, runs `alsoCopy` while it is stopped,
 * then the description. The guest stays stopped. On failure the partial files go, and the
 * guest continues when `resumeOnFailure` (a pause's own directory).
 */
export async function saveVm(
  vmm: SaveableVmm,
  dir: string,
  spec: SaveSpec,
  options: { alsoCopy?: () => Promise<void>; resumeOnFailure: boolean },
): Promise<void> {
  const target = vmFiles(dir);
  try {
    await vmm.saveState(target.vmstate);
    await options.alsoCopy?.();
    await writeSavedState(dir, await spec.inputs, spec.memMib);
  } catch (error) {
    await rm(target.savedState, { force: true });
    await rm(target.vmstate, { force: true });
    if (options.resumeOnFailure) await vmm.resume().catch(() => {});
    throw error;
  }
}

/**
 * Copies the running VM into `targetDir` while its guest is stopped: device state, RAM
 * and state disk (a saved state holds only with the RAM as it was at the save), then
 * lets the guest continue whatever became of the copy. Resolves with how long the guest
 * was stopped; `onResumeFailed` hears of a guest that could not continue.
 */
export async function forkVm(
  vmm: SaveableVmm,
  targetDir: string,
  spec: SaveSpec & { memoryPath: string; stateDiskPath: string },
  onResumeFailed: (error: Error) => void,
): Promise<number> {
  const started = performance.now();
  const target = vmFiles(targetDir);
  try {
    await saveVm(vmm, targetDir, spec, {
      resumeOnFailure: false,
      alsoCopy: async () => {
        await copySparse(spec.memoryPath, target.memory);
        await copySparse(spec.stateDiskPath, target.stateDisk);
      },
    });
  } finally {
    await vmm.resume().catch(onResumeFailed);
  }
  return Math.round(performance.now() - started);
}

/** A copy that stays sparse (and shares blocks where the file system can): RAM and disks. */
async function copySparse(from: string, to: string): Promise<void> {
  await runChecked("copy the VM's files", "cp", ["--sparse=always", "--reflink=auto", from, to]);
}
