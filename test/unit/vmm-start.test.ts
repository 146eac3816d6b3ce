import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { vmFiles, type ShimLaunchConfig } from "../../src/shim/launch.js";
import { startVmm } from "../../src/shim/vmm-start.js";
import type { VmmDriver, VmmHandle, VmmLaunchSpec } from "../../src/vmm/driver.js";

// The shim's VMM start with a fake driver that records what the directory held at the
// moment it launched: a saved state must be consumed before QEMU can `cont` the guest.

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pyro-vmm-start-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function config(restore: ShimLaunchConfig["restore"]): ShimLaunchConfig {
  return {
    vm_id: "ws_0123456789ab",
    kernel_path: "/k",
    initrd_path: "/i",
    rootfs_path: "/r",
    state_disk_path: join(dir, "state.ext4"),
    vcpu_count: 1,
    mem_mib: 4,
    acceleration: "tcg",
    vmm: "qemu",
    hostname: "h",
    kernel_args: [],
    ttl_seconds: 60,
    ttl_action: "pause",
    boot_timeout_ms: 1_000,
    workspace_root: null,
    delete_on_exit: false,
    owner_pid: null,
    memory_path: null,
    restore,
  };
}

interface Seen {
  restoreFrom: string | undefined;
  stateBytes: string | undefined;
  savedStateThere: boolean;
  vmstateThere: boolean;
}

/** A QEMU stand-in: notes what a restore would read and what the directory holds. */
function fakeDriver(seen: Seen[], fail = false): VmmDriver {
  return {
    name: "qemu",
    launch(spec: VmmLaunchSpec): Promise<VmmHandle> {
      const files = vmFiles(dir);
      seen.push({
        restoreFrom: spec.restoreFrom,
        stateBytes: spec.restoreFrom ? readFileSync(spec.restoreFrom, "utf8") : undefined,
        savedStateThere: existsSync(files.savedState),
        vmstateThere: existsSync(files.vmstate),
      });
      if (fail) return Promise.reject(new Error("QEMU exited"));
      return Promise.resolve({ pid: 1 } as unknown as VmmHandle);
    },
  };
}

function writeSaved(): void {
  writeFileSync(vmFiles(dir).vmstate, "device state");
  writeFileSync(vmFiles(dir).savedState, "{}");
}

describe("startVmm and a saved state", () => {
  it("consumes the saved state before the restore runs, and leaves none of it after", async () => {
    writeSaved();
    const seen: Seen[] = [];
    const restore = { vmstate_path: vmFiles(dir).vmstate, kind: "saved" as const };
    await startVmm(fakeDriver(seen), dir, config(restore)).handle;
    expect(seen).toEqual([
      {
        restoreFrom: vmFiles(dir).vmstateRestoring,
        stateBytes: "device state",
        savedStateThere: false,
        vmstateThere: false,
      },
    ]);
    expect(existsSync(vmFiles(dir).vmstateRestoring)).toBe(false);
  });

  it("leaves no saved state behind when the restore fails either", async () => {
    writeSaved();
    const restore = { vmstate_path: vmFiles(dir).vmstate, kind: "saved" as const };
    const start = startVmm(fakeDriver([], true), dir, config(restore));
    await expect(start.handle).rejects.toThrow("QEMU exited");
    for (const path of Object.values(vmFiles(dir))) expect(existsSync(path)).toBe(false);
  });

  it("keeps a template's state, which other clones restore too", async () => {
    const template = join(dir, "template.vmstate");
    writeFileSync(template, "template state");
    const seen: Seen[] = [];
    const restore = { vmstate_path: template, kind: "template" as const };
    // The fake has no agent channel to send PYRO-GO on: the launch itself is what counts.
    await startVmm(fakeDriver(seen), dir, config(restore)).handle.catch(() => {});
    expect(seen[0]?.restoreFrom).toBe(template);
    expect(readFileSync(template, "utf8")).toBe("template state");
  });
});
