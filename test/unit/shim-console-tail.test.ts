import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { appendFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ShimLaunchConfig, ShimStatus } from "../../src/shim/launch.js";
import { Supervisor } from "../../src/shim/supervisor.js";
import type { VmmDriver, VmmLaunchSpec } from "../../src/vmm/driver.js";

const config = (dir: string): ShimLaunchConfig => ({
  vm_id: "vm-tail",
  kernel_path: join(dir, "vmlinux"),
  initrd_path: join(dir, "initramfs"),
  rootfs_path: join(dir, "rootfs.ext4"),
  state_disk_path: join(dir, "state.ext4"),
  vcpu_count: 1,
  mem_mib: 256,
  acceleration: "tcg",
  vmm: "qemu",
  hostname: "tail",
  kernel_args: [],
  ttl_seconds: 0,
  ttl_action: "delete",
  boot_timeout_ms: 5_000,
  workspace_root: null,
  delete_on_exit: false,
  owner_pid: null,
});

/** A VMM that printed 600 MiB to its console (a guest printing forever), then died. */
const floodingVmm: VmmDriver = {
  name: "qemu",
  async launch(spec: VmmLaunchSpec) {
    writeFileSync(spec.consoleLogPath, "");
    truncateSync(spec.consoleLogPath, 600 * 1024 * 1024); // sparse: no disk used
    await appendFile(spec.consoleLogPath, "\nKernel panic - not syncing: the real reason\n");
    throw new Error("the VMM exited at boot");
  },
};

describe("shim boot failure", () => {
  const dirs: string[] = [];
  afterEach(() => {
    dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true }));
  });

  it("reports the console's last lines however big the log grew", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pyro-test-shim-"));
    dirs.push(dir);
    const before = process.memoryUsage().arrayBuffers;
    const supervisor = new Supervisor(dir, config(dir), floodingVmm, () => {});
    await supervisor.run();
    const grown = process.memoryUsage().arrayBuffers - before;
    const status = JSON.parse(readFileSync(join(dir, "shim.json"), "utf8")) as ShimStatus;
    expect(status.state).toBe("failed");
    expect(status.error).toContain("the VMM exited at boot");
    expect(status.error).toContain("Kernel panic - not syncing: the real reason");
    // Reading only the tail: nothing near the log's size was held in memory.
    expect(grown).toBeLessThan(16 * 1024 * 1024);
    // The failed VM still ends: the shim's main exits once this settles.
    await supervisor.ended;
  });
});
