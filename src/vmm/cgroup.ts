import { constants } from "node:fs";
import { access, mkdir, readdir, readFile, rmdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../contract/errors.js";
import { sleep } from "../util/process.js";

/** The controllers a VM's leaf limits. */
export const CGROUP_CONTROLLERS = ["memory", "pids", "cpu"] as const;
export type CgroupController = (typeof CGROUP_CONTROLLERS)[number];

/** Every pyro leaf lives under `<hierarchy>/pyro/`, named by its VM id. */
export const CGROUP_PARENT = "pyro";

/**
 * Where each controller can be used: the cgroup v2 (unified) mount when the controller is
 * available there, else the v1 hierarchy that has it mounted. A host may mix both (one
 * machine here has every controller on v1 and an empty v2 at /sys/fs/cgroup/unified).
 */
export interface CgroupLayout {
  v2: { mount: string; controllers: CgroupController[] } | undefined;
  v1: Partial<Record<CgroupController, string>>;
}

export interface VmLimits {
  memoryBytes: number;
  pids: number;
  /** CPU time allowed per period, in microseconds (cpu.max / cpu.cfs_quota_us). */
  cpuQuotaUs: number;
  cpuPeriodUs: number;
}

/** One directory of a VM's leaf and the limit files written into it. */
export interface CgroupDir {
  dir: string;
  version: 1 | 2;
  settings: [file: string, value: string][];
}

/** QEMU's own memory beside guest RAM: its code, TCG's translation buffer, page cache. */
const MEMORY_OVERHEAD_MIB = 256;
export const TCG_TB_SIZE_MIB = 256;
const PIDS_BASE = 128;
const CPU_PERIOD_US = 100_000;

/**
 * Limits derived from the VM's size. Memory: guest RAM, TCG's translation buffer (bounded
 * by `tb-size`, see qemu.ts) and QEMU's overhead. Pids: QEMU's threads (one per vCPU plus
 * up to 64 I/O workers and a few of its own). CPU: the vCPUs plus one for the main loop.
 */
export function vmLimits(vcpuCount: number, memMib: number, tcg: boolean): VmLimits {
  const mib = memMib + MEMORY_OVERHEAD_MIB + (tcg ? TCG_TB_SIZE_MIB : 0);
  return {
    memoryBytes: mib * 1024 * 1024,
    pids: PIDS_BASE + vcpuCount,
    cpuQuotaUs: (vcpuCount + 1) * CPU_PERIOD_US,
    cpuPeriodUs: CPU_PERIOD_US,
  };
}

/** Reads which cgroup hierarchies the host mounts, from /proc/self/mountinfo. */
export function parseCgroupMounts(mountinfo: string): CgroupLayout {
  const layout: CgroupLayout = { v2: undefined, v1: {} };
  for (const line of mountinfo.split("\n")) {
    const [before, after] = line.split(" - ");
    if (!before || !after) continue;
    const mountPoint = unescapeMountPath(before.split(" ")[4] ?? "");
    const [fstype, , superOptions = ""] = after.split(" ");
    if (fstype === "cgroup2") layout.v2 ??= { mount: mountPoint, controllers: [] };
    if (fstype !== "cgroup") continue;
    for (const option of superOptions.split(",")) {
      if ((CGROUP_CONTROLLERS as readonly string[]).includes(option))
        layout.v1[option as CgroupController] ??= mountPoint;
    }
  }
  return layout;
}

/** mountinfo writes space, tab, newline and backslash in paths as octal escapes. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(parseInt(octal, 8)),
  );
}

/** The host's layout, with the v2 controllers that its root really offers. */
export async function readCgroupLayout(): Promise<CgroupLayout> {
  const layout = parseCgroupMounts(await readFile("/proc/self/mountinfo", "utf8").catch(() => ""));
  if (layout.v2) {
    const offered = await readFile(join(layout.v2.mount, "cgroup.controllers"), "utf8").catch(
      () => "",
    );
    const names = offered.trim().split(/\s+/);
    layout.v2.controllers = CGROUP_CONTROLLERS.filter((c) => names.includes(c));
  }
  return layout;
}

/** Where each controller will be used (v2 first), and which have nowhere to go. */
export function placeControllers(layout: CgroupLayout) {
  const v2: CgroupController[] = [];
  const v1: [CgroupController, string][] = [];
  const missing: CgroupController[] = [];
  for (const controller of CGROUP_CONTROLLERS) {
    const v1Mount = layout.v1[controller];
    if (layout.v2?.controllers.includes(controller)) v2.push(controller);
    else if (v1Mount) v1.push([controller, v1Mount]);
    else missing.push(controller);
  }
  return { v2, v1, missing };
}

/** The directories of one VM's leaf and what goes into them (pure, for tests). */
export function planVmCgroup(layout: CgroupLayout, vmId: string, limits: VmLimits): CgroupDir[] {
  const placed = placeControllers(layout);
  const dirs: CgroupDir[] = [];
  if (layout.v2 && placed.v2.length > 0) {
    const v2Settings: Record<CgroupController, [string, string]> = {
      memory: ["memory.max", String(limits.memoryBytes)],
      pids: ["pids.max", String(limits.pids)],
      cpu: ["cpu.max", `${limits.cpuQuotaUs} ${limits.cpuPeriodUs}`],
    };
    dirs.push({
      dir: join(layout.v2.mount, CGROUP_PARENT, vmId),
      version: 2,
      settings: placed.v2.map((c) => v2Settings[c]),
    });
  }
  const v1Settings: Record<CgroupController, [string, string][]> = {
    memory: [["memory.limit_in_bytes", String(limits.memoryBytes)]],
    pids: [["pids.max", String(limits.pids)]],
    cpu: [
      ["cpu.cfs_period_us", String(limits.cpuPeriodUs)],
      ["cpu.cfs_quota_us", String(limits.cpuQuotaUs)],
    ],
  };
  for (const [controller, mount] of placed.v1) {
    dirs.push({
      dir: join(mount, CGROUP_PARENT, vmId),
      version: 1,
      settings: v1Settings[controller],
    });
  }
  return dirs;
}

/** Whether this process may make leaves: root, with the hierarchies writable. */
export async function cgroupsWritable(layout: CgroupLayout): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  const placed = placeControllers(layout);
  const mounts = [...(placed.v2.length ? [layout.v2!.mount] : []), ...placed.v1.map(([, m]) => m)];
  if (mounts.length === 0) return false;
  for (const mount of mounts) {
    const ok = await access(mount, constants.W_OK).then(
      () => true,
      () => false,
    );
    if (!ok) return false;
  }
  return true;
}

/**
 * Makes a VM's leaf and writes its limits. A v2 leaf needs its controllers enabled in the
 * `subtree_control` of every ancestor (the root's and `pyro/`'s). Anything half-made is
 * removed before the error goes up.
 */
export async function createVmCgroup(dirs: CgroupDir[]): Promise<void> {
  try {
    for (const { dir, version, settings } of dirs) {
      if (version === 2) await enableV2Controllers(dir, settings);
      await mkdir(dir, { recursive: true });
      for (const [file, value] of settings) await writeFile(join(dir, file), value);
    }
  } catch (error) {
    await removeVmCgroup(dirs);
    throw new PyroError(
      "unavailable",
      `could not set up the VM's cgroup (${(error as Error).message}); ` +
        "see the `vm cgroup limits` line of `pyro doctor`",
      { cause: error },
    );
  }
}

async function enableV2Controllers(leaf: string, settings: [string, string][]) {
  const enable = settings.map(([file]) => `+${file.split(".")[0]}`).join(" ");
  const parent = join(leaf, "..");
  await mkdir(parent, { recursive: true });
  await writeFile(join(parent, "..", "cgroup.subtree_control"), enable);
  await writeFile(join(parent, "cgroup.subtree_control"), enable);
}

const RMDIR_ATTEMPTS = 20;
const RMDIR_RETRY_MS = 50;

/** Removes a VM's leaf once its processes are gone (the kernel may lag a moment). */
export async function removeVmCgroup(dirs: CgroupDir[]): Promise<void> {
  for (const { dir } of dirs) {
    for (let attempt = 1; ; attempt += 1) {
      const error = await rmdir(dir).then(
        () => undefined,
        (e: NodeJS.ErrnoException) => e,
      );
      if (!error || error.code === "ENOENT") break;
      if (error.code !== "EBUSY" || attempt >= RMDIR_ATTEMPTS) break;
      await sleep(RMDIR_RETRY_MS);
    }
  }
}

/** A leaf this old with no process in it belongs to a VM whose shim was killed. */
const STALE_LEAF_MS = 60_000;

/**
 * Removes empty leaves left by shims that died before cleaning up (SIGKILL). A leaf with
 * a process in it cannot be removed (EBUSY), and a young one may be a VM still launching.
 */
export async function sweepStaleLeaves(dirs: CgroupDir[], now = Date.now()): Promise<void> {
  for (const { dir } of dirs) {
    const parent = join(dir, "..");
    const names = await readdir(parent).catch(() => []);
    for (const name of names) {
      const leaf = join(parent, name);
      const info = await stat(leaf).catch(() => undefined);
      if (!info?.isDirectory() || now - info.mtimeMs < STALE_LEAF_MS) continue;
      const procs = await readFile(join(leaf, "cgroup.procs"), "utf8").catch(() => "x");
      if (procs.trim() === "") await rmdir(leaf).catch(() => {});
    }
  }
}

/**
 * The VM's leaf, made and limited, ready for QEMU to enter; none when this host's
 * cgroups cannot be used (not root, no controller mounted, or a tree that refuses the
 * leaf, e.g. a container's): the VM then runs without, and `pyro doctor` says so.
 */
export async function createCgroupForVm(vmId: string, limits: VmLimits): Promise<CgroupDir[]> {
  if (!/^[A-Za-z0-9_-]+$/.test(vmId)) {
    throw new PyroError("internal", `refusing cgroup name ${JSON.stringify(vmId)}`);
  }
  const layout = await readCgroupLayout();
  if (!(await cgroupsWritable(layout))) return [];
  const dirs = planVmCgroup(layout, vmId, limits);
  await sweepStaleLeaves(dirs);
  return createVmCgroup(dirs).then(
    () => dirs,
    () => [],
  );
}

/** Makes and removes a throwaway leaf: why leaves cannot be made here, or undefined. */
export async function tryCgroupLeaf(layout: CgroupLayout): Promise<string | undefined> {
  const dirs = planVmCgroup(layout, `doctor-${process.pid}`, vmLimits(1, 128, false));
  try {
    await createVmCgroup(dirs);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    await removeVmCgroup(dirs);
  }
}
