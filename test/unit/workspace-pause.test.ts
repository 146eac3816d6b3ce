import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ShimLaunchConfig, ShimStatus } from "../../src/shim/launch.js";
import { vmFiles } from "../../src/shim/launch.js";
import { SandboxRuntime } from "../../src/manager/runtime.js";
import { Sandboxes, type BeforeStopEvent } from "../../src/manager/sandbox.js";
import { WorkspaceManager } from "../../src/manager/workspaces.js";
import { savingAtTtl } from "../../src/manager/workspace-pause.js";
import { agentError } from "../../src/guest/errors.js";
import { workspaceStore, type WorkspaceRecord } from "../../src/manager/workspace-store.js";
import {
  checkSavedState,
  differences,
  savedStateInputs,
  savedStateKey,
  writeSavedState,
} from "../../src/vmstate/saved-state.js";

// Pause state transitions on real record files in a temp PYRO_HOME, shims faked by their
// status file; and the saved-state key and check on real files. No VM: the guest tier
// (test/guest/pause-fork.test.ts) proves the save and restore themselves.

const previousHome = process.env.PYRO_HOME;
let home: string;

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "pyro-pause-unit-"));
  process.env.PYRO_HOME = home;
});
afterEach(() => rmSync(home, { recursive: true, force: true }));
afterAll(() => {
  if (previousHome === undefined) delete process.env.PYRO_HOME;
  else process.env.PYRO_HOME = previousHome;
});

const WS_ID = "ws_0123456789ab";
const MEM_MIB = 4;

function workspace(changes: Partial<WorkspaceRecord> = {}): WorkspaceRecord {
  const now = new Date().toISOString();
  return {
    workspace_id: WS_ID,
    name: null,
    labels: {},
    environment: "debian:12-base",
    state: "started",
    vcpu_count: 1,
    mem_mib: MEM_MIB,
    ttl_seconds: 600,
    created_at: now,
    expires_at: now,
    last_activity_at: now,
    network_policy: "off",
    allowed_domains: [],
    network_status: null,
    workspace_seed: { mode: "empty", seed_path: null },
    secrets: [],
    command_count: 0,
    last_command: null,
    reset_count: 0,
    last_reset_at: null,
    service_count: 2,
    running_service_count: 2,
    execution_mode: "guest",
    acceleration: "tcg",
    error: null,
    ...changes,
  };
}

/** A shim.json as a shim that has exited leaves it (its pid is one that has exited). */
function writeShimStatus(dir: string, changes: Partial<ShimStatus>): void {
  const status: ShimStatus = {
    shim_pid: spawnSync("true").pid!,
    vmm_pid: null,
    state: "exited",
    acceleration: "tcg",
    agent_version: null,
    timings: {},
    error: null,
    stop_reason: null,
    updated_at: new Date().toISOString(),
    ...changes,
  };
  writeFileSync(join(dir, "shim.json"), JSON.stringify(status));
}

/** A launch config over real (tiny) artifact files in `root`. */
function launchIn(root: string, changes: Partial<ShimLaunchConfig> = {}): ShimLaunchConfig {
  for (const name of ["vmlinux", "initrd", "rootfs.ext4"]) {
    if (!existsSync(join(root, name))) writeFileSync(join(root, name), name);
  }
  return {
    vm_id: WS_ID,
    kernel_path: join(root, "vmlinux"),
    initrd_path: join(root, "initrd"),
    rootfs_path: join(root, "rootfs.ext4"),
    state_disk_path: join(root, "state.ext4"),
    vcpu_count: 1,
    mem_mib: MEM_MIB,
    acceleration: "tcg",
    vmm: "qemu",
    hostname: "ws",
    kernel_args: [],
    ttl_seconds: 600,
    ttl_action: "pause",
    boot_timeout_ms: 1000,
    workspace_root: "/workspace",
    delete_on_exit: false,
    owner_pid: null,
    network: null,
    ...changes,
  };
}

/** What a shim's pause leaves in `dir`: vmstate, the RAM file and their description. */
async function savedVm(dir: string, launch: ShimLaunchConfig): Promise<void> {
  writeFileSync(vmFiles(dir).vmstate, "device state");
  writeFileSync(vmFiles(dir).memory, "");
  truncateSync(vmFiles(dir).memory, MEM_MIB * 2 ** 20);
  await writeSavedState(dir, await savedStateInputs(launch), MEM_MIB);
}

describe("paused workspace records", () => {
  it("a workspace whose shim saved it reads as paused, its services still running", async () => {
    const dir = workspaceStore.dir(WS_ID);
    await workspaceStore.create(workspace());
    writeShimStatus(dir, { state: "paused", stop_reason: "ttl" });
    expect(await workspaceStore.reconciled(WS_ID)).toMatchObject({
      state: "paused",
      error: null,
      running_service_count: 2,
    });
    expect(JSON.parse(readFileSync(vmFiles(dir).record, "utf8")).state).toBe("paused");
  });

  it("stop of a paused workspace runs the stop hooks, discards the saved VM, keeps the disk", async () => {
    const dir = workspaceStore.dir(WS_ID);
    await workspaceStore.create(workspace({ state: "paused" }));
    writeFileSync(vmFiles(dir).stateDisk, "disk");
    await savedVm(dir, launchIn(dir));
    const sandboxes = new Sandboxes(workspaceStore, new SandboxRuntime());
    const events: BeforeStopEvent[] = [];
    sandboxes.onBeforeStop(async (event) => void events.push(event));
    expect(await sandboxes.stop(WS_ID)).toMatchObject({
      state: "stopped",
      running_service_count: 0,
    });
    expect(events).toEqual([{ id: WS_ID, reason: "stop", guest: undefined }]);
    for (const file of ["vmstate", "memory", "savedState"] as const)
      expect(existsSync(vmFiles(dir)[file]), file).toBe(false);
    expect(existsSync(vmFiles(dir).stateDisk)).toBe(true);
  });

  it("pause refuses a workspace that is not started and is a no-op on a paused one", async () => {
    const manager = new WorkspaceManager(new SandboxRuntime());
    await workspaceStore.create(workspace({ state: "stopped" }));
    await expect(manager.pause({ workspace_id: WS_ID })).rejects.toMatchObject({
      code: "conflict",
      message: `workspace ${WS_ID} is stopped; only a started workspace can be paused`,
    });
    await workspaceStore.update(WS_ID, (r) => ({ ...r, state: "paused" }));
    expect(await manager.pause({ workspace_id: WS_ID })).toMatchObject({
      state: "paused",
      pause_ms: 0,
    });
  });

  it("resume refuses a stopped workspace with the command that starts it", async () => {
    const manager = new WorkspaceManager(new SandboxRuntime());
    await workspaceStore.create(workspace({ state: "stopped" }));
    await expect(manager.resume({ workspace_id: WS_ID })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining(`pyro workspace start ${WS_ID}`),
    });
  });

  it("the disk tools refuse a paused workspace and say to stop it first", async () => {
    const { WorkspaceDisk } = await import("../../src/manager/workspace-disk.js");
    await workspaceStore.create(workspace({ state: "paused" }));
    await expect(new WorkspaceDisk(() => {}).list({ workspace_id: WS_ID })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/is paused; stop it first/),
    });
  });
});

describe("paused workspace edge cases", () => {
  it("a reset of a paused workspace that fails leaves it stopped, its saved VM discarded", async () => {
    const dir = workspaceStore.dir(WS_ID);
    await workspaceStore.create(workspace({ state: "paused" }));
    writeFileSync(vmFiles(dir).stateDisk, "disk");
    await savedVm(dir, launchIn(dir));
    const manager = new WorkspaceManager(new SandboxRuntime());
    // An archive that cannot be read: the new disk is never built.
    await expect(
      manager.recreate(WS_ID, join(dir, "no-such-archive.tar"), "baseline"),
    ).rejects.toThrow();
    expect(await workspaceStore.load(WS_ID)).toMatchObject({ state: "stopped" });
    expect(existsSync(vmFiles(dir).savedState)).toBe(false);
  });

  it("the shim's refusal during an idle-TTL save reaches the manager as one to wait out", () => {
    const refusal = { type: "error", code: "conflict", message: "the VM is being saved" };
    expect(savingAtTtl(agentError({ ...refusal, saving: "ttl" }))).toBe(true);
    expect(agentError({ ...refusal, saving: "ttl" }).details.saving).toBe("ttl");
    // An explicit pause or a fork is the caller's own business; other errors are not this.
    expect(savingAtTtl(agentError({ ...refusal, saving: "fork" }))).toBe(false);
    expect(savingAtTtl(agentError(refusal))).toBe(false);
    expect(savingAtTtl(agentError({ ...refusal, code: "internal", saving: "ttl" }))).toBe(false);
  });
});

describe("saved state (src/vmstate/saved-state.ts)", () => {
  it("is usable by a boot of the same launch config", async () => {
    const dir = workspaceStore.dir(WS_ID);
    await workspaceStore.create(workspace());
    await savedVm(dir, launchIn(dir));
    expect(await checkSavedState(dir, launchIn(dir))).toEqual({ usable: true });
  });

  it("is refused, naming what changed, under another kernel, memory size or network", async () => {
    const dir = workspaceStore.dir(WS_ID);
    await workspaceStore.create(workspace());
    await savedVm(dir, launchIn(dir));
    writeFileSync(join(dir, "vmlinux"), "a rebuilt kernel");
    expect(await checkSavedState(dir, launchIn(dir))).toEqual({
      usable: false,
      reason: "it was saved under another guest kernel",
    });
    await savedVm(dir, launchIn(dir));
    expect(
      await checkSavedState(
        dir,
        launchIn(dir, { network: { policy: "egress", allowed_domains: [] } }),
      ),
    ).toEqual({ usable: false, reason: "it was saved under another network device setup" });
    const resized = launchIn(dir, { mem_mib: MEM_MIB * 2 });
    expect(await checkSavedState(dir, resized)).toMatchObject({
      usable: false,
      reason: expect.stringContaining("another memory size"),
    });
  });

  it("is refused when a file is truncated, missing, or its description is not one", async () => {
    const dir = workspaceStore.dir(WS_ID);
    await workspaceStore.create(workspace());
    const launch = launchIn(dir);
    await savedVm(dir, launch);
    truncateSync(vmFiles(dir).vmstate, 3);
    expect(await checkSavedState(dir, launch)).toEqual({
      usable: false,
      reason: "its saved device state is missing or truncated",
    });
    await savedVm(dir, launch);
    truncateSync(vmFiles(dir).memory, 4096);
    expect(await checkSavedState(dir, launch)).toEqual({
      usable: false,
      reason: "its saved memory file is missing or truncated",
    });
    await savedVm(dir, launch);
    writeFileSync(vmFiles(dir).savedState, '{"key":"../../etc"}');
    expect(await checkSavedState(dir, launch)).toEqual({
      usable: false,
      reason: "its saved state is missing or unreadable",
    });
  });

  it("has a key that every input changes", async () => {
    const root = mkdtempSync(join(tmpdir(), "pyro-pause-key-"));
    try {
      const base = await savedStateInputs(launchIn(root));
      const variants = [
        { ...base, vcpu_count: 2 },
        { ...base, mem_mib: 8 },
        { ...base, acceleration: "kvm" },
        { ...base, network: true },
        { ...base, vmm: "firecracker" },
        { ...base, pyro_version: "0.0.0-other" },
        { ...base, kernel: { ...base.kernel!, ino: base.kernel!.ino + 1 } },
        { ...base, initrd: { ...base.initrd!, size: 1 } },
        { ...base, rootfs: { ...base.rootfs!, mtime_ms: 1 } },
        { ...base, vmm_binary: { path: "/opt/qemu", size: 1, mtime_ms: 1, ino: 1 } },
      ];
      const keys = new Set([base, ...variants].map(savedStateKey));
      expect(keys.size).toBe(variants.length + 1);
      expect(differences(base, variants.at(-1)!)).toBe("another QEMU binary");
      expect(differences(base, { ...base, acceleration: "kvm" })).toBe(
        "tcg acceleration (now kvm)",
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
