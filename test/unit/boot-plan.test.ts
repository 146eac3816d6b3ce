import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BootArtifacts } from "../../src/env/environments.js";
import { coldAfterWarmFailure, planBoot } from "../../src/manager/boot-plan.js";
import type { ShimLaunchConfig } from "../../src/shim/launch.js";
import { silentProgress } from "../../src/util/progress.js";
import { CLONE_VMSTATE, templateFiles } from "../../src/vmstate/templates.js";

// The cold paths of the boot plan: decided before any template is looked for or built.

let dir: string;
const previousTemplates = process.env.PYRO_TEMPLATE_DIR;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pyro-boot-plan-"));
  process.env.PYRO_TEMPLATE_DIR = join(dir, "templates");
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  if (previousTemplates === undefined) delete process.env.PYRO_TEMPLATE_DIR;
  else process.env.PYRO_TEMPLATE_DIR = previousTemplates;
});

function launch(vmm: ShimLaunchConfig["vmm"]): ShimLaunchConfig {
  return {
    vm_id: "vm_0123456789ab",
    kernel_path: "/k",
    initrd_path: "/i",
    rootfs_path: "/r",
    state_disk_path: join(dir, "state.ext4"),
    vcpu_count: 1,
    mem_mib: 256,
    acceleration: "tcg",
    vmm,
    hostname: "vm-0123456789ab",
    kernel_args: [],
    ttl_seconds: 60,
    ttl_action: "delete",
    boot_timeout_ms: 1000,
    workspace_root: null,
    delete_on_exit: true,
    owner_pid: null,
    network: null,
    memory_path: vmm === "qemu" ? join(dir, "memory.ram") : null,
  };
}

const artifacts = {} as BootArtifacts;

describe("boot plan", () => {
  it.each([
    ["qemu", { cold: true }, "a cold boot was asked for (--cold)"],
    ["firecracker", {}, "the firecracker driver cannot restore memory templates"],
    ["host", {}, "the host driver cannot restore memory templates"],
    [
      "qemu",
      { kernelArgs: ["loglevel=7"] },
      "extra kernel arguments (loglevel=7) need a cold boot",
    ],
  ] as const)("%s %j boots cold and says why", async (vmm, options, reason) => {
    const config = {
      ...launch(vmm),
      kernel_args: "kernelArgs" in options ? [...options.kernelArgs] : [],
    };
    const plan = await planBoot(config, artifacts, dir, {
      ...options,
      progress: silentProgress,
    });
    expect(plan).toMatchObject({ boot_mode: "cold", cold_reason: reason, template_key: null });
    expect(plan.launch.restore ?? null).toBeNull();
    expect(existsSync(join(dir, "templates"))).toBe(false);
  });
});

describe("a warm boot that failed", () => {
  it("blames the template, removes the clone's files (its disk too) and plans the VM cold", async () => {
    const key = "a".repeat(64);
    const template = templateFiles(key);
    mkdirSync(template.dir, { recursive: true });
    writeFileSync(template.vmstate, "state");
    const vm = join(dir, "vm");
    mkdirSync(vm);
    for (const file of ["memory.ram", CLONE_VMSTATE, "state.ext4"]) {
      writeFileSync(join(vm, file), "x");
    }
    const warm = {
      launch: {
        ...launch("qemu"),
        restore: { vmstate_path: join(vm, CLONE_VMSTATE), kind: "template" as const },
      },
      boot_mode: "warm" as const,
      cold_reason: null,
      template_key: key,
      template_kind: "late" as const,
      template_ms: 7,
    };
    const plan = await coldAfterWarmFailure(warm, vm, new Error("load of migration failed\nmore"));
    expect(plan).toMatchObject({ boot_mode: "cold", template_key: null, template_ms: 7 });
    expect(plan.launch.restore).toBeNull();
    expect(plan.cold_reason).toBe(
      "the warm boot from the memory template failed (load of migration failed); booted cold",
    );
    // A late template's clone got the template's state disk: the cold retry makes its own.
    for (const file of ["memory.ram", CLONE_VMSTATE, "state.ext4"]) {
      expect(existsSync(join(vm, file))).toBe(false);
    }
    expect(existsSync(template.vmstate)).toBe(false);
    expect(JSON.parse(readFileSync(template.failure, "utf8"))).toMatchObject({
      stage: "restore",
      error: "load of migration failed\nmore",
    });
  });
});
