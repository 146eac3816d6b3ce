import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cgroupCheck } from "../../src/manager/doctor.js";
import {
  cgroupsWritable,
  createCgroupForVm,
  createVmCgroup,
  parseCgroupMounts,
  planVmCgroup,
  readCgroupLayout,
  removeVmCgroup,
  vmLimits,
  type CgroupLayout,
} from "../../src/vmm/cgroup.js";

/** This machine's shape: every controller on v1, an empty cgroup2 at .../unified. */
const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const V2_MOUNTINFO = `26 21 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;

const limits = vmLimits(2, 512, true);

describe("per-VM cgroup limits", () => {
  const temps: string[] = [];
  afterEach(() => temps.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

  it("derives memory, pids and cpu from the VM's size", () => {
    // Guest RAM + QEMU's overhead (256 MiB) + TCG's translation buffer (256 MiB).
    expect(limits.memoryBytes).toBe((512 + 256 + 256) * 1024 * 1024);
    expect(vmLimits(2, 512, false).memoryBytes).toBe((512 + 256) * 1024 * 1024);
    expect(limits.pids).toBe(130);
    expect([limits.cpuQuotaUs, limits.cpuPeriodUs]).toEqual([300_000, 100_000]);
  });

  it("finds v1 controllers (co-mounted or not) beside an empty v2", () => {
    const layout = parseCgroupMounts(HYBRID_MOUNTINFO);
    expect(layout.v1).toEqual({
      cpu: "/sys/fs/cgroup/cpu,cpuacct",
      memory: "/sys/fs/cgroup/memory",
      pids: "/sys/fs/cgroup/pids",
    });
    expect(layout.v2?.mount).toBe("/sys/fs/cgroup/unified");
    // The empty v2 offers nothing, so every limit goes to v1.
    expect(planVmCgroup(layout, "vm-1", limits)).toEqual([
      {
        dir: "/sys/fs/cgroup/memory/pyro/vm-1",
        version: 1,
        settings: [["memory.limit_in_bytes", String(limits.memoryBytes)]],
      },
      { dir: "/sys/fs/cgroup/pids/pyro/vm-1", version: 1, settings: [["pids.max", "130"]] },
      {
        dir: "/sys/fs/cgroup/cpu,cpuacct/pyro/vm-1",
        version: 1,
        settings: [
          ["cpu.cfs_period_us", "100000"],
          ["cpu.cfs_quota_us", "300000"],
        ],
      },
    ]);
  });

  it("puts every limit in one v2 leaf when the unified hierarchy offers the controllers", () => {
    const layout = parseCgroupMounts(V2_MOUNTINFO);
    layout.v2!.controllers = ["memory", "pids", "cpu"];
    expect(planVmCgroup(layout, "vm-1", limits)).toEqual([
      {
        dir: "/sys/fs/cgroup/pyro/vm-1",
        version: 2,
        settings: [
          ["memory.max", String(limits.memoryBytes)],
          ["pids.max", "130"],
          ["cpu.max", "300000 100000"],
        ],
      },
    ]);
  });

  it("v2: enables the controllers down the tree, then writes the leaf's limits", async () => {
    const root = mkdtempSync(join(tmpdir(), "pyro-test-cgroup-"));
    temps.push(root);
    const layout: CgroupLayout = { v2: { mount: root, controllers: ["memory", "pids"] }, v1: {} };
    const dirs = planVmCgroup(layout, "vm-9", limits);
    await createVmCgroup(dirs);
    expect(readFileSync(join(root, "cgroup.subtree_control"), "utf8")).toBe("+memory +pids");
    expect(readFileSync(join(root, "pyro", "cgroup.subtree_control"), "utf8")).toBe(
      "+memory +pids",
    );
    expect(readFileSync(join(root, "pyro", "vm-9", "memory.max"), "utf8")).toBe(
      String(limits.memoryBytes),
    );
    expect(readFileSync(join(root, "pyro", "vm-9", "pids.max"), "utf8")).toBe("130");
  });

  it("a leaf that cannot be made is an `unavailable` error naming doctor, nothing left", async () => {
    const root = mkdtempSync(join(tmpdir(), "pyro-test-cgroup-"));
    temps.push(root);
    mkdirSync(join(root, "pyro"));
    // A file where the leaf's directory should go: mkdir fails.
    writeFileSync(join(root, "pyro", "vm-9"), "");
    const layout: CgroupLayout = { v2: undefined, v1: { pids: root } };
    await expect(createVmCgroup(planVmCgroup(layout, "vm-9", limits))).rejects.toMatchObject({
      code: "unavailable",
      message: expect.stringContaining("pyro doctor"),
    });
  });

  it("refuses a VM id that is not a plain name", async () => {
    await expect(createCgroupForVm("../escape", limits)).rejects.toMatchObject({
      code: "internal",
    });
  });
});

describe("pyro doctor on cgroups", () => {
  it("says when per-VM limits cannot be applied, and why", () => {
    const v2Only = parseCgroupMounts(V2_MOUNTINFO);
    v2Only.v2!.controllers = ["memory", "cpu"];
    const missing = cgroupCheck(v2Only, true, true);
    expect(missing.status).toBe("fail");
    expect(missing.required).toBe(false);
    expect(missing.detail).toContain("per-VM limits cannot be applied: no pids controller mounted");
    const notRoot = cgroupCheck(parseCgroupMounts(HYBRID_MOUNTINFO), false, false);
    expect(notRoot.detail).toContain("pyro is not root");
    expect(notRoot.fix).toContain("root");
    // A tree that refuses the leaf (a container's cgroup with processes in it, say).
    const refused = cgroupCheck(parseCgroupMounts(HYBRID_MOUNTINFO), true, true, "EBUSY");
    expect(refused.status).toBe("fail");
    expect(refused.detail).toContain("a trial leaf failed: EBUSY");
    const fine = cgroupCheck(parseCgroupMounts(HYBRID_MOUNTINFO), true, true);
    expect(fine.status).toBe("pass");
    expect(fine.detail).toContain("v1 memory at /sys/fs/cgroup/memory");
  });
});

describe("per-VM cgroup on this host's real hierarchy", async () => {
  const layout = await readCgroupLayout();
  const usable = await cgroupsWritable(layout);

  it.runIf(usable)("makes the leaf with its limits and removes it again", async () => {
    const vmId = `test-${process.pid}`;
    const dirs = await createCgroupForVm(vmId, limits);
    expect(dirs.length).toBeGreaterThan(0);
    for (const { dir, settings } of dirs) {
      for (const [file, value] of settings) {
        // The kernel may round (v1 memory to pages); these values are page multiples.
        expect(readFileSync(join(dir, file), "utf8").trim()).toBe(value);
      }
    }
    await removeVmCgroup(dirs);
    for (const { dir } of dirs) expect(existsSync(dir)).toBe(false);
  });
});
