import { chown, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../contract/errors.js";
import type { BootArtifacts } from "../env/environments.js";
import { waitParked } from "../guest/park.js";
import { lastLines } from "../util/process.js";
import { readFileTail } from "../vmm/console-log.js";
import type { VmmHandle } from "../vmm/driver.js";
import { createStateDisk } from "../manager/boot.js";
import { createMemoryFile } from "../vmm/memory.js";
import { QemuDriver } from "../vmm/qemu.js";
import { canonicalSpec, type TemplateShape } from "./template-key.js";
import { templateFiles, type TemplateBuilder } from "./templates.js";

export interface TemplateBuildOptions {
  /** Bound on launch to parked guest. @default 60000 (TCG on a busy host) */
  parkTimeoutMs?: number;
}

/**
 * Builds a template without a shim: QEMU boots the environment with `pyro.park=1|late`,
 * the agent parks and says so, and the VM's device state is saved beside its RAM file.
 * An `early` template's state disk is a throwaway sparse file of the clones' size (the
 * guest only probed it, and drops what it read when told to go on); a `late` one's is a
 * fresh state disk the guest mounted, kept as it was at the save for clones to copy.
 */
export function templateBuilder(
  shape: TemplateShape,
  artifacts: BootArtifacts,
  options: TemplateBuildOptions = {},
): TemplateBuilder {
  return async (dir) => {
    const files = templateFiles("", dir);
    const late = shape.kind === "late";
    const stateDisk = late ? files.stateDisk : join(dir, "state.scratch");
    if (late) await createStateDisk(dir);
    else await createSparseFile(stateDisk, shape.stateDiskBytes);
    // The driver hands the RAM file to the jailed QEMU's uid; it goes back to root below.
    await createMemoryFile(files.memory, shape.memMib);
    const console = join(dir, "console.log");
    const spec = {
      ...canonicalSpec(shape),
      vmId: `template-${process.pid}`,
      kernelPath: artifacts.kernel.path,
      initrdPath: artifacts.agent.initramfs,
      disks: [
        { path: artifacts.rootfs, readOnly: true },
        { path: stateDisk, readOnly: false },
      ],
      agentSocketPath: join(dir, "agent.sock"),
      controlSocketPath: join(dir, "vmm.sock"),
      consoleLogPath: console,
      memoryPath: files.memory,
    };
    const vmm = await new QemuDriver().launch(spec);
    try {
      await parkAndSave(vmm, files.vmstate, options.parkTimeoutMs ?? 60_000);
    } catch (error) {
      const tail = lastLines(await readFileTail(console, 8192), 10);
      const message = error instanceof Error ? error.message : String(error);
      throw new PyroError("unavailable", tail ? `${message}; console: ${tail}` : message, {
        cause: error,
      });
    } finally {
      await vmm.stop().catch(() => vmm.kill());
      await vmm.exited;
    }
    // Clones copy it as root; nobody writes the template again.
    if (process.getuid?.() === 0) await chown(files.memory, 0, 0);
    await Promise.all(
      [
        ...(late ? [] : [stateDisk]),
        console,
        `${console}.vmm`,
        spec.agentSocketPath,
        spec.controlSocketPath,
      ].map((path) => rm(path, { force: true })),
    );
  };
}

async function parkAndSave(vmm: VmmHandle, vmstatePath: string, timeoutMs: number) {
  if (!vmm.saveState) throw new PyroError("internal", "the QEMU driver cannot save VM state");
  // A NIC's frames (none are expected while parked) must not back up into QEMU.
  vmm.network?.fromGuest.resume();
  await waitParked(await vmm.agentChannel, timeoutMs);
  await vmm.saveState(vmstatePath);
}

async function createSparseFile(path: string, bytes: number): Promise<void> {
  const handle = await open(path, "wx", 0o600);
  try {
    await handle.truncate(bytes);
  } finally {
    await handle.close();
  }
}
