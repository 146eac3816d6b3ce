import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import type { ShimStatus } from "../../src/shim/launch.js";
import { SandboxRuntime } from "../../src/manager/runtime.js";
import { Sandboxes, type BeforeStopEvent } from "../../src/manager/sandbox.js";
import { vmStore, type VmRecord } from "../../src/manager/vms.js";
import { workspaceStore, type WorkspaceRecord } from "../../src/manager/workspace-store.js";

// The sandbox core on real record files in a temp PYRO_HOME; shims are faked by their
// status file (shim.json), so no VM and no shim process is involved.

const previousHome = process.env.PYRO_HOME;
let home: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "pyro-sandbox-core-"));
  process.env.PYRO_HOME = home;
});
afterEach(() => {
  rmSync(home, { recursive: true, force: true });
});
afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
  if (previousHome === undefined) delete process.env.PYRO_HOME;
  else process.env.PYRO_HOME = previousHome;
});

const WS_ID = "ws_0123456789ab";
const VM_ID = "vm_0123456789ab";

function workspace(changes: Partial<WorkspaceRecord> = {}): WorkspaceRecord {
  const now = new Date().toISOString();
  return {
    workspace_id: WS_ID,
    name: null,
    labels: {},
    environment: "debian:12-base",
    state: "started",
    vcpu_count: 1,
    mem_mib: 256,
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

function vm(changes: Partial<VmRecord> = {}): VmRecord {
  const now = new Date().toISOString();
  return {
    vm_id: VM_ID,
    environment: "debian:12-base",
    state: "started",
    vcpu_count: 1,
    mem_mib: 256,
    ttl_seconds: 600,
    network: false,
    created_at: now,
    started_at: now,
    expires_at: now,
    execution_mode: "guest",
    acceleration: "tcg",
    error: null,
    ...changes,
  };
}

/** A shim.json as the shim leaves it; a pid that has exited unless one is given. */
function writeShimStatus(dir: string, changes: Partial<ShimStatus>, pid?: number): void {
  const status: ShimStatus = {
    shim_pid: pid ?? spawnSync("true").pid!,
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

/** A live process whose command line names `dir`: how the core recognises a running shim. */
function liveShim(dir: string): number {
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)", dir], {
    stdio: "ignore",
  });
  children.push(child);
  return child.pid!;
}

function storedRecord(dir: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(dir, "record.json"), "utf8"));
}

describe("sandbox store", () => {
  it("says not_found, with the id in the details, for missing and malformed ids", async () => {
    await expect(workspaceStore.load(WS_ID)).rejects.toMatchObject({
      code: "not_found",
      message: `no workspace with id "${WS_ID}"; list them with workspace_list`,
      details: { workspace_id: WS_ID },
    });
    await expect(vmStore.load("../../etc")).rejects.toMatchObject({
      code: "not_found",
      message: expect.stringContaining("ids look like vm_0123456789ab"),
      details: { vm_id: "../../etc" },
    });
    // A workspace id is not a VM id, even when that directory exists.
    await workspaceStore.create(workspace());
    await expect(vmStore.load(WS_ID)).rejects.toMatchObject({ code: "not_found" });
    expect(existsSync(join(home, "vms"))).toBe(false);
  });

  it("a workspace whose VM idled out (ttl) is stopped, and the record says so from then on", async () => {
    const dir = workspaceStore.dir(WS_ID);
    await workspaceStore.create(workspace());
    writeShimStatus(dir, { state: "exited", stop_reason: "ttl" });
    const record = await workspaceStore.reconciled(WS_ID);
    expect(record).toMatchObject({ state: "stopped", error: null, running_service_count: 0 });
    expect(storedRecord(dir)).toMatchObject({ state: "stopped", running_service_count: 0 });
  });

  it("a workspace whose VM ended any other way is failed with the shim's reason or a fix", async () => {
    const dir = workspaceStore.dir(WS_ID);
    await workspaceStore.create(workspace());
    writeShimStatus(dir, { state: "failed", error: "the VMM exited with signal 9" });
    expect(await workspaceStore.reconciled(WS_ID)).toMatchObject({
      state: "failed",
      error: "the VMM exited with signal 9",
      running_service_count: 0,
    });
    rmSync(join(dir, "shim.json"));
    await workspaceStore.update(WS_ID, (r) => ({ ...r, state: "started", error: null }));
    expect((await workspaceStore.reconciled(WS_ID)).error).toContain("workspace_start");
  });

  it("a VM whose shim died reads as failed but keeps `started` on disk for the reaper", async () => {
    const dir = vmStore.dir(VM_ID);
    await vmStore.create(vm());
    writeShimStatus(dir, { state: "booting" });
    expect(await vmStore.reconciled(VM_ID)).toMatchObject({
      state: "failed",
      error: "its supervisor process died",
    });
    expect(storedRecord(dir).state).toBe("started");
  });

  it("a started sandbox with a live shim is left as it is", async () => {
    const dir = workspaceStore.dir(WS_ID);
    await workspaceStore.create(workspace());
    writeShimStatus(dir, { state: "ready" }, liveShim(dir));
    expect(await workspaceStore.reconciled(WS_ID)).toMatchObject({
      state: "started",
      running_service_count: 2,
    });
    await expect(
      workspaceStore.requireState(WS_ID, "not started", "run commands with workspace_exec"),
    ).rejects.toMatchObject({
      code: "conflict",
      message: `workspace ${WS_ID} is already started; run commands with workspace_exec`,
    });
    expect((await workspaceStore.requireState(WS_ID, "started", "unused")).state).toBe("started");
  });

  it("refuses operations that need a started sandbox with its state and the fix", async () => {
    await vmStore.create(vm({ state: "stopped" }));
    await expect(
      vmStore.requireState(VM_ID, "started", "start it with vm_start (SDK: startVm) first"),
    ).rejects.toMatchObject({
      code: "conflict",
      message: `VM ${VM_ID} is stopped, not started; start it with vm_start (SDK: startVm) first`,
    });
    expect((await vmStore.requireState(VM_ID, "not started", "unused")).state).toBe("stopped");
  });

  it("serialises concurrent record updates: none is lost", async () => {
    await workspaceStore.create(workspace());
    await Promise.all(
      Array.from({ length: 20 }, () =>
        workspaceStore.update(WS_ID, (r) => ({ ...r, command_count: r.command_count + 1 })),
      ),
    );
    expect((await workspaceStore.load(WS_ID)).command_count).toBe(20);
  });

  it("an update of a sandbox deleted meanwhile is not_found, not a raw ENOENT", async () => {
    await workspaceStore.create(workspace());
    const update = workspaceStore.update(WS_ID, (r) => {
      rmSync(workspaceStore.dir(WS_ID), { recursive: true, force: true });
      return r;
    });
    await expect(update).rejects.toMatchObject({
      code: "not_found",
      message: `workspace ${WS_ID} was deleted while this ran`,
    });
  });
});

describe("sandbox lifecycle", () => {
  const runtime = new SandboxRuntime();

  it("marks a workspace started with its activity stamp and a VM with its start time", async () => {
    await workspaceStore.create(workspace({ state: "failed", error: "creation did not finish" }));
    const ws = await new Sandboxes(workspaceStore, runtime).markStarted(WS_ID, "kvm", {
      reset_count: 3,
    });
    expect(ws).toMatchObject({
      state: "started",
      error: null,
      acceleration: "kvm",
      reset_count: 3,
    });
    expect(Date.parse(ws.expires_at) - Date.parse(ws.last_activity_at)).toBe(600_000);

    await vmStore.create(vm({ state: "created", started_at: null, acceleration: null }));
    const started = await new Sandboxes(vmStore, runtime).markStarted(VM_ID, "tcg");
    expect(started).toMatchObject({ state: "started", acceleration: "tcg" });
    expect(Date.parse(started.expires_at) - Date.parse(started.started_at!)).toBe(600_000);
  });

  it("stop refuses a workspace whose VM already ended, and runs no hook", async () => {
    const sandboxes = new Sandboxes(workspaceStore, runtime);
    const events: BeforeStopEvent[] = [];
    sandboxes.onBeforeStop(async (event) => void events.push(event));
    await workspaceStore.create(workspace());
    writeShimStatus(workspaceStore.dir(WS_ID), { state: "failed", error: "crashed" });
    await expect(sandboxes.stop(WS_ID)).rejects.toMatchObject({
      code: "conflict",
      message: `workspace ${WS_ID} is failed, not started; there is nothing to stop`,
    });
    expect(events).toEqual([]);
  });

  it("runs every before-stop hook on power-off and delete, without a guest when none runs", async () => {
    const sandboxes = new Sandboxes(workspaceStore, runtime);
    const events: Array<Pick<BeforeStopEvent, "id" | "reason"> & { guest: boolean }> = [];
    sandboxes.onBeforeStop(async () => {
      throw new PyroError("guest_error", "a hook that fails");
    });
    sandboxes.onBeforeStop(async ({ id, reason, guest }) => {
      events.push({ id, reason, guest: guest !== undefined });
    });
    await workspaceStore.create(workspace({ state: "stopped" }));
    await sandboxes.powerOff(WS_ID, "reset");
    await sandboxes.delete(WS_ID);
    expect(events).toEqual([
      { id: WS_ID, reason: "reset", guest: false },
      { id: WS_ID, reason: "delete", guest: false },
    ]);
    expect(existsSync(workspaceStore.dir(WS_ID))).toBe(false);
    await expect(sandboxes.delete(WS_ID)).rejects.toMatchObject({ code: "not_found" });
  });

  it("hooks belong to their manager: another instance's hooks do not run", async () => {
    const mine = new Sandboxes(workspaceStore, runtime);
    const other = new Sandboxes(workspaceStore, runtime);
    let ran = 0;
    other.onBeforeStop(async () => void ran++);
    await workspaceStore.create(workspace({ state: "stopped" }));
    await mine.delete(WS_ID);
    expect(ran).toBe(0);
  });
});
