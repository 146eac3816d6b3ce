import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

/** One thing a finished VM or a dead client left behind. */
export interface Leak {
  kind: "vm_dir" | "workspace_dir" | "process" | "socket" | "temp_dir" | "cgroup";
  detail: string;
}

export interface LeakScope {
  /** The soak's PYRO_HOME. */
  home: string;
  /** The soak's TMPDIR: the OS temp dir of every pyro process it starts. */
  tmp: string;
  /** Workspaces that are meant to be alive now: their dir, processes and sockets are no leak. */
  liveWorkspaces: string[];
  /** Every VM and workspace id seen during the soak (cgroup leaves are named by them). */
  ids: Set<string>;
  /** cgroup hierarchies to look in; default: every cgroup2 and v1 memory/pids/cpu mount. */
  cgroupRoots?: string[];
}

/** Everything pyro left behind in the scope; empty when clean. */
export function findLeaks(scope: LeakScope): Leak[] {
  return [
    ...listDir(join(scope.home, "vms")).map((id) => leak("vm_dir", join(scope.home, "vms", id))),
    ...listDir(join(scope.home, "workspaces"))
      .filter((id) => !scope.liveWorkspaces.includes(id))
      .map((id) => leak("workspace_dir", join(scope.home, "workspaces", id))),
    ...strayProcesses(scope).map((p) => leak("process", p)),
    ...straySockets(scope).map((path) => leak("socket", path)),
    ...listDir(scope.tmp)
      .filter((name) => name.startsWith("pyro-"))
      .map((name) => leak("temp_dir", join(scope.tmp, name))),
    ...strayCgroups(scope).map((path) => leak("cgroup", path)),
  ];
}

const leak = (kind: Leak["kind"], detail: string): Leak => ({ kind, detail });

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

const isUnder = (path: string, dir: string) => path === dir || path.startsWith(dir + "/");

/** A path under home or tmp that no live workspace owns (a shim names its workspace dir). */
function strayPath(path: string, scope: LeakScope): boolean {
  const live = scope.liveWorkspaces.map((id) => join(scope.home, "workspaces", id));
  return (
    [scope.home, scope.tmp].some((root) => isUnder(path, root)) &&
    !live.some((dir) => isUnder(path, dir))
  );
}

/**
 * Processes still tied to the soak's home or temp dir, other than live workspaces' own: by
 * command line (the shim and QEMU name their VM dir), open files and cwd (a VMM handed
 * file descriptors instead of paths still holds them), or, once no workspace is meant to
 * live, by a PYRO_HOME in its environment.
 */
export function strayProcesses(scope: LeakScope): string[] {
  const found: string[] = [];
  for (const entry of listDir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const evidence = processEvidence(entry, scope);
    if (evidence) found.push(`pid ${entry} (${evidence})`);
  }
  return found;
}

function processEvidence(pid: string, scope: LeakScope): string | null {
  const cmdline = readText(`/proc/${pid}/cmdline`).split("\0");
  const argPath = cmdline.flatMap((arg) => pathsIn(arg)).find((p) => strayPath(p, scope));
  if (argPath) return `${cmdline[0]} names ${argPath}`;
  const cwd = safeReadlink(`/proc/${pid}/cwd`);
  if (cwd && strayPath(cwd, scope)) return `cwd ${cwd}`;
  for (const fd of listDir(`/proc/${pid}/fd`)) {
    const target = safeReadlink(`/proc/${pid}/fd/${fd}`);
    if (target && strayPath(target, scope)) return `fd ${fd} -> ${target}`;
  }
  if (scope.liveWorkspaces.length > 0) return null;
  const environ = readText(`/proc/${pid}/environ`).split("\0");
  return environ.includes(`PYRO_HOME=${scope.home}`) ? "PYRO_HOME in its environment" : null;
}

/** Absolute paths inside one argument (QEMU packs them into `key=value,key=value` lists). */
function pathsIn(arg: string): string[] {
  return arg.split(/[,=]/).filter((part) => part.startsWith("/"));
}

function safeReadlink(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

/** Unix sockets left under home or tmp: files on disk, and bound sockets the kernel lists. */
export function straySockets(scope: LeakScope): string[] {
  const onDisk = [scope.home, scope.tmp].flatMap((root) => socketFiles(root));
  const bound = readText("/proc/net/unix")
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/)[7] ?? "")
    .filter((path) => path.startsWith("/"));
  const all = new Set([...onDisk, ...bound].filter((path) => strayPath(path, scope)));
  return [...all].sort();
}

/** Socket files below `dir`, never following a link. */
function socketFiles(dir: string, depth = 0): string[] {
  if (depth > 8) return [];
  return listDir(dir).flatMap((name) => {
    const path = join(dir, name);
    try {
      const stat = lstatSync(path);
      if (stat.isSocket()) return [path];
      return stat.isDirectory() ? socketFiles(path, depth + 1) : [];
    } catch {
      return [];
    }
  });
}

/**
 * Per-VM cgroup leaves (`<hierarchy>/pyro/<id>`) of any VM the soak saw, except live
 * workspaces' own.
 */
export function strayCgroups(scope: LeakScope): string[] {
  const roots = scope.cgroupRoots ?? cgroupHierarchies();
  const live = new Set(scope.liveWorkspaces.flatMap((id) => [id, launchVmId(scope.home, id)]));
  const ids = [...scope.ids].filter((id) => !live.has(id));
  return roots.flatMap((root) =>
    ids.map((id) => join(root, "pyro", id)).filter((path) => existsSync(path)),
  );
}

/** The VM id a VM or workspace directory's launch.json names ("" when there is none). */
export function launchVmId(home: string, id: string, folder = "workspaces"): string {
  try {
    const launch = JSON.parse(readText(join(home, folder, id, "launch.json"))) as {
      vm_id?: unknown;
    };
    return typeof launch.vm_id === "string" ? launch.vm_id : "";
  } catch {
    return "";
  }
}

/** Mount points of cgroup2 and of the v1 controllers pyro limits (memory, pids, cpu). */
export function cgroupHierarchies(mounts = readText("/proc/self/mounts")): string[] {
  const roots = new Set<string>();
  for (const line of mounts.split("\n")) {
    const [, mountPoint, type, options = ""] = line.split(" ");
    if (!mountPoint) continue;
    const controllers = options.split(",");
    if (type === "cgroup2") roots.add(mountPoint);
    if (type === "cgroup" && ["memory", "pids", "cpu"].some((c) => controllers.includes(c))) {
      roots.add(mountPoint);
    }
  }
  return [...roots].sort();
}
