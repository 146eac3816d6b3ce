import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cgroupHierarchies, findLeaks, type LeakScope } from "../../scripts/soak/leaks.js";
import { planSoak } from "../../scripts/soak/plan.js";

// The soak's verdict rests on this finder: each kind of leftover it claims to see is
// planted here for real (directories, bound sockets, live processes) and must be reported.

let root: string;
let scope: LeakScope;
const children: ChildProcess[] = [];
const servers: Server[] = [];

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "soak-leaks-"));
  scope = {
    home: join(root, "home"),
    tmp: join(root, "tmp"),
    liveWorkspaces: [],
    ids: new Set(),
    cgroupRoots: [join(root, "cgroup")],
  };
  for (const dir of [scope.home, scope.tmp, join(scope.home, "vms"), join(root, "cgroup")]) {
    mkdirSync(dir, { recursive: true });
  }
});

afterEach(async () => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  rmSync(root, { recursive: true, force: true });
});

/** A live process; `argv0` stands in for a path on its command line, as QEMU's options are. */
function sleeper(options: Parameters<typeof spawn>[2] = {}): number {
  const child = spawn("sleep", ["30"], { stdio: "ignore", ...options });
  children.push(child);
  return child.pid!;
}

async function listen(path: string): Promise<void> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((r) => server.listen(path, r));
}

const kinds = () => findLeaks(scope).map((l) => l.kind);

describe("the soak's leak finder", () => {
  it("finds nothing in a clean home", () => {
    expect(findLeaks(scope)).toEqual([]);
  });

  it("reports VM dirs, dead workspace dirs and pyro temp dirs, not live workspaces", () => {
    mkdirSync(join(scope.home, "vms", "vm_0123456789ab"));
    mkdirSync(join(scope.home, "workspaces", "ws_live"), { recursive: true });
    mkdirSync(join(scope.home, "workspaces", "ws_dead"));
    mkdirSync(join(scope.tmp, "pyro-capture-x1"));
    mkdirSync(join(scope.tmp, "someone-else"));
    scope.liveWorkspaces = ["ws_live"];
    expect(findLeaks(scope).map((l) => [l.kind, l.detail])).toEqual([
      ["vm_dir", join(scope.home, "vms", "vm_0123456789ab")],
      ["workspace_dir", join(scope.home, "workspaces", "ws_dead")],
      ["temp_dir", join(scope.tmp, "pyro-capture-x1")],
    ]);
  });

  it("reports sockets left in a VM dir, on disk or only bound, not a live workspace's", async () => {
    mkdirSync(join(scope.home, "workspaces", "ws_live"), { recursive: true });
    mkdirSync(join(scope.home, "vms", "vm_a"));
    await listen(join(scope.home, "workspaces", "ws_live", "shim.sock"));
    await listen(join(scope.home, "vms", "vm_a", "shim.sock"));
    // Still bound by a live process after its file was removed: only the kernel lists it.
    await listen(join(scope.home, "vms", "vm_a", "agent.sock"));
    unlinkSync(join(scope.home, "vms", "vm_a", "agent.sock"));
    scope.liveWorkspaces = ["ws_live"];
    const sockets = findLeaks(scope).filter((l) => l.kind === "socket");
    expect(sockets.map((l) => l.detail)).toEqual([
      join(scope.home, "vms", "vm_a", "agent.sock"),
      join(scope.home, "vms", "vm_a", "shim.sock"),
    ]);
  });

  it("reports processes that name, hold or sit in the soak's dirs", () => {
    const byArg = sleeper({
      argv0: `file=${join(scope.home, "vms", "vm_a", "state.ext4")},if=none`,
    });
    const byCwd = sleeper({ cwd: scope.tmp });
    const out = openSync(join(scope.home, "held.log"), "w");
    const byFd = sleeper({ stdio: ["ignore", out, "ignore"] });
    const reported = findLeaks(scope)
      .filter((l) => l.kind === "process")
      .map((l) => l.detail);
    for (const [pid, evidence] of [
      [byArg, "names"],
      [byCwd, "cwd"],
      [byFd, "-> " + join(scope.home, "held.log")],
    ] as const) {
      expect(reported.find((d) => d.startsWith(`pid ${pid} `))).toContain(evidence);
    }
  });

  it("leaves a live workspace's processes alone but reports PYRO_HOME holders once none live", () => {
    mkdirSync(join(scope.home, "workspaces", "ws_live"), { recursive: true });
    // A workspace's shim names its directory itself on its command line.
    sleeper({ argv0: join(scope.home, "workspaces", "ws_live") });
    const holder = sleeper({ env: { ...process.env, PYRO_HOME: scope.home } });
    scope.liveWorkspaces = ["ws_live"];
    expect(kinds()).toEqual([]);
    scope.liveWorkspaces = [];
    expect(kinds()).toEqual(["workspace_dir", "process", "process"]);
    const detail = findLeaks(scope).find((l) => l.detail.startsWith(`pid ${holder} `))?.detail;
    expect(detail).toContain("PYRO_HOME in its environment");
  });

  it("reports cgroup leaves of VMs it saw, except a live workspace's", () => {
    for (const id of ["vm_a", "ws_live", "not_ours"]) {
      mkdirSync(join(root, "cgroup", "pyro", id), { recursive: true });
    }
    mkdirSync(join(scope.home, "workspaces", "ws_live"), { recursive: true });
    scope.ids = new Set(["vm_a", "ws_live"]);
    scope.liveWorkspaces = ["ws_live"];
    expect(findLeaks(scope).map((l) => l.detail)).toEqual([join(root, "cgroup", "pyro", "vm_a")]);
  });

  it("looks for cgroup leaves in cgroup2 and the v1 memory, pids and cpu hierarchies", () => {
    const mounts = [
      "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid 0 0",
      "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,memory 0 0",
      "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0",
      "cgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0",
      "cgroup /sys/fs/cgroup/blkio cgroup rw,blkio 0 0",
      "proc /proc proc rw 0 0",
    ].join("\n");
    expect(cgroupHierarchies(mounts)).toEqual([
      "/sys/fs/cgroup/cpu,cpuacct",
      "/sys/fs/cgroup/memory",
      "/sys/fs/cgroup/pids",
      "/sys/fs/cgroup/unified",
    ]);
  });
});

describe("the soak's plan", () => {
  const options = { runs: 200, seed: 7, workspaces: 2, kill_share: 0.4, max_kill_ms: 5_000 };

  it("is the same for the same seed and differs for another", () => {
    expect(planSoak(options)).toEqual(planSoak(options));
    expect(planSoak({ ...options, seed: 8 })).not.toEqual(planSoak(options));
  });

  it("kills about the asked share of clients, within the kill window, and runs every kind", () => {
    const plan = planSoak(options);
    const killed = plan.filter((op) => op.kill_after_ms !== null);
    expect(killed.length).toBeGreaterThan(50);
    expect(killed.length).toBeLessThan(110);
    expect(killed.every((op) => op.kill_after_ms! >= 0 && op.kill_after_ms! < 5_000)).toBe(true);
    expect(new Set(plan.map((op) => op.kind))).toEqual(
      new Set(["cli-run", "sdk-run", "cli-exec", "sdk-exec"]),
    );
    expect(plan.filter((op) => op.kind.endsWith("exec")).every((op) => op.workspace! < 2)).toBe(
      true,
    );
  });

  it("only plans runs when there is no workspace", () => {
    const plan = planSoak({ ...options, workspaces: 0 });
    expect(plan.every((op) => op.kind.endsWith("run") && op.workspace === null)).toBe(true);
  });
});
