import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { bootSandbox } from "../../src/manager/boot.js";
import { vmFiles, type ShimLaunchConfig } from "../../src/shim/launch.js";
import { tempDir } from "../helpers/temp.js";

/**
 * The shim listens for its clients and starts its VMM before it loads the supervisor
 * (`shim/main.ts`), so a VMM that fails at once fails before the supervisor exists. The
 * manager must still hear why, and find the one-shot VM's directory gone afterwards.
 */
function launchConfig(dir: string): ShimLaunchConfig {
  return {
    vm_id: "vm_shimstart",
    kernel_path: join(dir, "missing-kernel"),
    initrd_path: join(dir, "missing-initrd"),
    rootfs_path: join(dir, "missing-rootfs"),
    state_disk_path: vmFiles(dir).stateDisk,
    vcpu_count: 1,
    mem_mib: 128,
    acceleration: "tcg",
    vmm: "host",
    hostname: "shim-start",
    kernel_args: [],
    ttl_seconds: 0,
    ttl_action: "delete",
    boot_timeout_ms: 5_000,
    workspace_root: null,
    delete_on_exit: true,
    owner_pid: null,
  };
}

describe("a shim whose VMM fails at once", () => {
  it("tells its claiming client why, then is gone with its directory", async () => {
    const dir = join(tempDir("pyro-shim-start-"), "vm");
    await mkdir(dir, { mode: 0o700 });
    // The host driver reads the state disk's ext4 superblock first: this fails at once.
    await writeFile(vmFiles(dir).stateDisk, Buffer.alloc(4096));
    await expect(bootSandbox(dir, launchConfig(dir), { claim: true })).rejects.toThrow(
      /the VM failed to boot: .*is not an ext4 image/,
    );
    // bootSandbox returns only once the failed shim has exited: its cleanup is done.
    expect(existsSync(dir)).toBe(false);
  });
});
