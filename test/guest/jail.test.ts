import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { cachePaths } from "../../src/env/artifacts.js";
import type { ShimLaunchConfig, ShimStatus } from "../../src/shim/launch.js";
import { cgroupsWritable, planVmCgroup, readCgroupLayout, vmLimits } from "../../src/vmm/cgroup.js";
import { CONSOLE_LOG_LIMITS } from "../../src/vmm/console-log.js";
import { JAIL_NOFILE } from "../../src/vmm/jail.js";
import { eventually, processGone } from "../helpers/guest.js";

// A comma in PYRO_HOME and in the cache path: QEMU's option syntax would split there
// (issue 7, defect 10). Every VM of this file boots through such paths.
const realCache = cachePaths.root();
const home = mkdtempSync(join(tmpdir(), "pyro-home-jail,comma-"));
const cacheLinkDir = mkdtempSync(join(tmpdir(), "pyro-cache-a,b-"));
const cacheLink = join(cacheLinkDir, "cache");
symlinkSync(realCache, cacheLink);
process.env.PYRO_HOME = home;
process.env.PYRO_CACHE_DIR = cacheLink;

const pyro = new Pyro();
const isRoot = process.getuid?.() === 0;

const statusField = (status: string, field: string) =>
  new RegExp(`^${field}:[ \\t]*(.*)$`, "m").exec(status)?.[1]?.trim();

/** One limit line of /proc/PID/limits: [soft, hard]. */
const limitOf = (limits: string, name: string) =>
  new RegExp(`^${name}\\s+(\\S+)\\s+(\\S+)`, "m").exec(limits)?.slice(1, 3);

describe("the jailed VMM", () => {
  let workspaceId = "";
  let dir = "";
  let vmmPid = 0;
  let vmId = "";

  beforeAll(async () => {
    const created = await pyro.createWorkspace({
      environment: "debian:12-base",
      vcpu_count: 1,
      mem_mib: 256,
    });
    workspaceId = created.workspace_id;
    dir = join(home, "workspaces", workspaceId);
    const shim = JSON.parse(readFileSync(join(dir, "shim.json"), "utf8")) as ShimStatus;
    vmmPid = shim.vmm_pid!;
    vmId = (JSON.parse(readFileSync(join(dir, "launch.json"), "utf8")) as ShimLaunchConfig).vm_id;
  });

  afterAll(async () => {
    if (workspaceId) await pyro.deleteWorkspace({ workspace_id: workspaceId }).catch(() => {});
    // rm does not follow the link: the shared cache stays.
    for (const path of [home, cacheLinkDir]) rmSync(path, { recursive: true, force: true });
  });

  it("boots and runs commands through paths with commas in them", async () => {
    expect(home).toContain(",");
    const result = await pyro.execWorkspace({
      workspace_id: workspaceId,
      command: ["sh", "-c", "echo jailed"],
    });
    expect([result.exit_code, result.stdout]).toEqual([0, "jailed\n"]);
  });

  it("runs QEMU under seccomp, without capabilities and (as root) as a uid of its own", () => {
    const status = readFileSync(`/proc/${vmmPid}/status`, "utf8");
    expect(statusField(status, "Name")).toMatch(/^qemu/);
    expect(statusField(status, "Seccomp")).toBe("2");
    expect(statusField(status, "NoNewPrivs")).toBe("1");
    expect(statusField(status, "CapEff")).toBe("0000000000000000");
    expect(statusField(status, "CapPrm")).toBe("0000000000000000");
    if (isRoot) {
      const uids = statusField(status, "Uid")!.split("\t");
      expect(uids.every((uid) => uid !== "0")).toBe(true);
      expect(statusField(status, "CapBnd")).toBe("0000000000000000");
      expect(statusField(status, "Groups")).toBe("");
    }
  });

  it("limits QEMU's open files, file size (its state disk's) and core dumps", () => {
    const limits = readFileSync(`/proc/${vmmPid}/limits`, "utf8");
    expect(limitOf(limits, "Max open files")).toEqual([String(JAIL_NOFILE), String(JAIL_NOFILE)]);
    const disk = String(statSync(join(dir, "state.ext4")).size);
    expect(limitOf(limits, "Max file size")).toEqual([disk, disk]);
    expect(limitOf(limits, "Max core file size")).toEqual(["0", "0"]);
  });

  it("puts QEMU in a cgroup leaf of its VM with limits from the VM's size", async () => {
    const layout = await readCgroupLayout();
    if (!(await cgroupsWritable(layout))) return; // `pyro doctor` says so; nothing to check
    const leaves = planVmCgroup(layout, vmId, vmLimits(1, 256, true));
    expect(leaves.length).toBeGreaterThan(0);
    for (const { dir: leaf, settings } of leaves) {
      expect(readFileSync(join(leaf, "cgroup.procs"), "utf8").split("\n")).toContain(
        String(vmmPid),
      );
      for (const [file, value] of settings)
        expect(readFileSync(join(leaf, file), "utf8").trim()).toBe(value);
    }
  });

  it("keeps a flooding guest's console log bounded, with the boot and the latest output", async () => {
    const consolePath = join(dir, "console.log");
    const boot = readFileSync(consolePath, "latin1").slice(0, 256);
    expect(boot.length).toBeGreaterThan(0);
    // 4 MB through the serial console, then a last line: more than the log keeps.
    const result = await pyro.execWorkspace({
      workspace_id: workspaceId,
      command: [
        "sh",
        "-c",
        "head -c 4000000 /dev/zero | tr '\\0' x > /dev/console; echo pyro-flood-end > /dev/console",
      ],
      timeout_seconds: 170,
    });
    expect(result.exit_code).toBe(0);
    const ended = await eventually(
      () => readFileSync(consolePath, "latin1").trimEnd().endsWith("pyro-flood-end"),
      10_000,
    );
    expect(ended).toBe(true);
    const { headBytes, tailBytes } = CONSOLE_LOG_LIMITS;
    expect(statSync(consolePath).size).toBeLessThanOrEqual(headBytes + 2 * tailBytes + 200);
    const log = readFileSync(consolePath, "latin1");
    expect(log.startsWith(boot)).toBe(true);
    expect(log).toMatch(/\[pyro: \d+ bytes of output dropped here to bound the log\]/);
  });

  it("removes the leaf and QEMU when the workspace goes", async () => {
    const layout = await readCgroupLayout();
    const leaves = planVmCgroup(layout, vmId, vmLimits(1, 256, true));
    await pyro.deleteWorkspace({ workspace_id: workspaceId });
    workspaceId = "";
    expect(await eventually(() => processGone(vmmPid), 10_000)).toBe(true);
    for (const { dir: leaf } of leaves) expect(existsSync(leaf)).toBe(false);
  });
});
