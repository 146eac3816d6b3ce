import { rename, rm } from "node:fs/promises";
import type { VmmDriver, VmmHandle, VmmLaunchSpec, VmmNetworkSpec } from "../vmm/driver.js";
import { sendGo } from "../guest/park.js";
import { createMemoryFile } from "../vmm/memory.js";
import type { ShimLaunchConfig } from "./launch.js";
import { vmFiles } from "./launch.js";

/**
 * The first part of a VM's boot: from the launch config to a started VMM. It is a module
 * of its own, with no protocol code under it, because the shim starts the VMM before it
 * loads the rest of itself (zod and the op schemas cost over 100 ms of CPU): that load
 * then runs while the guest boots or restores, not before (issue 10, `shim/main.ts`).
 */

/**
 * A VMM being started, and when: the supervisor reports the times as `vmm_start_ms` and
 * `restore_ms`. Its handle settles once the VMM is controllable and, for a template's
 * clone, the guest was told to go on (`guest/park.ts`).
 */
export interface VmmStart {
  /** Settles with the running VMM; a shim that ends meanwhile awaits it to stop it. */
  readonly handle: Promise<VmmHandle>;
  /** `performance.now()` when the start began. */
  readonly startedAt: number;
  /** `performance.now()` when the driver's launch began (after the RAM file and network). */
  readonly launchedAt: number | undefined;
  /** `performance.now()` when the VMM became controllable; unset until then. */
  readonly readyAt: number | undefined;
}

/** What a VM with a NIC needs before its VMM starts (`shim/network.ts`). */
export interface VmmStartNetwork {
  prepare(): Promise<void>;
  spec: VmmNetworkSpec;
}

/** Starts the VMM of the VM in `dir` as its launch config says. */
export function startVmm(
  driver: VmmDriver,
  dir: string,
  config: ShimLaunchConfig,
  network?: VmmStartNetwork,
): VmmStart {
  const startedAt = performance.now();
  const times: { launchedAt?: number; readyAt?: number } = {};
  const handle = (async () => {
    if (config.restore && driver.name !== "qemu")
      throw new Error(`the ${driver.name} driver cannot restore a saved VM`);
    if (config.memory_path) {
      await createMemoryFile(config.memory_path, config.mem_mib, { fresh: !config.restore });
    }
    await network?.prepare();
    const launchConfig = await consumeSavedState(dir, config);
    times.launchedAt = performance.now();
    const vmm = await driver
      .launch(vmmLaunchSpec(dir, launchConfig, network?.spec))
      .finally(() => rm(vmFiles(dir).vmstateRestoring, { force: true }));
    times.readyAt = performance.now();
    // A template's clone waits, parked before its root mount, for the word to go on: it
    // gets it now, so its root mount runs while the shim loads the rest of itself.
    if (config.restore?.kind === "template") await sendGo(await vmm.agentChannel);
    return vmm;
  })();
  // Its owner awaits it later (the shim may still be loading); until then a failed
  // launch must not count as an unhandled rejection, which would end the process.
  handle.catch(() => {});
  return {
    handle,
    startedAt,
    get launchedAt() {
      return times.launchedAt;
    },
    get readyAt() {
      return times.readyAt;
    },
  };
}

/**
 * A saved state holds only with the RAM as it was at the save, and the restore's `cont`
 * lets the guest change that RAM: from then on the state is stale, and restoring it again
 * would run old devices over new memory (silent corruption). So it stops being a saved
 * state BEFORE the restore: its description goes and the device state is renamed out of
 * the way, to be read only through the fd QEMU inherits. A shim killed at any point after
 * this leaves no state that a later resume could take for a valid one (it boots the disk).
 */
async function consumeSavedState(dir: string, config: ShimLaunchConfig): Promise<ShimLaunchConfig> {
  if (config.restore?.kind !== "saved") return config;
  const files = vmFiles(dir);
  await rm(files.savedState, { force: true });
  await rename(config.restore.vmstate_path, files.vmstateRestoring);
  return { ...config, restore: { ...config.restore, vmstate_path: files.vmstateRestoring } };
}

/** The driver's view of a VM: its launch config and the files of its directory. */
export function vmmLaunchSpec(
  dir: string,
  config: ShimLaunchConfig,
  network?: VmmNetworkSpec,
): VmmLaunchSpec {
  const files = vmFiles(dir);
  return {
    vmId: config.vm_id,
    kernelPath: config.kernel_path,
    initrdPath: config.initrd_path,
    kernelArgs: [`pyro.hostname=${config.hostname}`, ...config.kernel_args],
    vcpuCount: config.vcpu_count,
    memMib: config.mem_mib,
    acceleration: config.acceleration,
    disks: [
      { path: config.rootfs_path, readOnly: true },
      { path: config.state_disk_path, readOnly: false },
    ],
    agentSocketPath: files.agentSocket,
    controlSocketPath: files.controlSocket,
    consoleLogPath: files.console,
    ...(network ? { network } : {}),
    ...(config.memory_path ? { memoryPath: config.memory_path } : {}),
    ...(config.restore ? { restoreFrom: config.restore.vmstate_path } : {}),
  };
}
