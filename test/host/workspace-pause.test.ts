import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { workspaceStore } from "../../src/manager/workspace-store.js";
import { vmFiles } from "../../src/shim/launch.js";
import { HOST_ENVIRONMENT, hostTierHome } from "../helpers/host.js";

// Pause and resume rules around the real shim and agent, without a VM: the host-process
// driver cannot save a VM, which is what these tests lean on. Saving and restoring a real
// guest is test/guest/pause-fork.test.ts.
const home = hostTierHome();
const pyro = new Pyro();
let workspaceId = "";

beforeAll(async () => {
  ({ workspace_id: workspaceId } = await pyro.createWorkspace({ environment: HOST_ENVIRONMENT }));
  await pyro.writeWorkspaceFile({ workspace_id: workspaceId, path: "kept.txt", text: "kept\n" });
});
afterAll(async () => {
  await pyro.deleteWorkspace({ workspace_id: workspaceId }).catch(() => {});
});

describe("workspace pause and resume (host-process driver)", () => {
  it("a VMM that cannot save refuses the pause clearly and the workspace runs on", async () => {
    await expect(pyro.pauseWorkspace({ workspace_id: workspaceId })).rejects.toMatchObject({
      code: "unavailable",
      message: expect.stringContaining("cannot save a running VM (only QEMU can); stop it"),
    });
    expect((await pyro.statusWorkspace({ workspace_id: workspaceId })).state).toBe("started");
    const run = await pyro.execWorkspace({
      workspace_id: workspaceId,
      command: ["cat", "kept.txt"],
    });
    expect(run.stdout).toBe("kept\n");
  });

  it("a record left paused over a running VM (its resume's caller died) is finished first: a pause is not a no-op", async () => {
    // What a resume killed after its shim restored the VM leaves: the state files, the
    // record still paused, the VM running.
    const dir = join(home, "workspaces", workspaceId);
    writeFileSync(vmFiles(dir).vmstate, "a spent device state");
    writeFileSync(vmFiles(dir).savedState, "{}");
    await workspaceStore.update(workspaceId, (r) => ({ ...r, state: "paused" }));
    // The pause reaches the shim (this driver cannot save), instead of claiming "paused".
    await expect(pyro.pauseWorkspace({ workspace_id: workspaceId })).rejects.toMatchObject({
      code: "unavailable",
      message: expect.stringContaining("cannot save a running VM"),
    });
    expect(await pyro.statusWorkspace({ workspace_id: workspaceId })).toMatchObject({
      state: "started",
      error: null,
    });
    expect(existsSync(vmFiles(dir).vmstate)).toBe(false);
    expect(existsSync(vmFiles(dir).savedState)).toBe(false);
    const run = await pyro.execWorkspace({
      workspace_id: workspaceId,
      command: ["cat", "kept.txt"],
    });
    expect(run.stdout).toBe("kept\n");
  });

  it("a paused workspace whose saved VM is unusable resumes from its disk on the next exec, saying why", async () => {
    await pyro.stopWorkspace({ workspace_id: workspaceId });
    // What a pause leaves, with a device state the host cannot use (no description).
    const dir = join(home, "workspaces", workspaceId);
    writeFileSync(vmFiles(dir).vmstate, "not a device state");
    await workspaceStore.update(workspaceId, (r) => ({ ...r, state: "paused" }));
    const run = await pyro.execWorkspace({
      workspace_id: workspaceId,
      command: ["cat", "kept.txt"],
    });
    expect(run.stdout).toBe("kept\n");
    const status = await pyro.statusWorkspace({ workspace_id: workspaceId });
    expect(status).toMatchObject({ state: "started", error: null });
    expect(status.resume_note).toMatch(
      /^the saved VM could not be restored: its saved state is missing or unreadable; its disk was booted instead/,
    );
    expect(existsSync(vmFiles(dir).vmstate)).toBe(false);
  });

  it("resume of a started workspace leaves it as it is; of a stopped one says to start it", async () => {
    expect(await pyro.resumeWorkspace({ workspace_id: workspaceId })).toMatchObject({
      state: "started",
      resumed_from: "running",
    });
    await pyro.stopWorkspace({ workspace_id: workspaceId });
    await expect(pyro.resumeWorkspace({ workspace_id: workspaceId })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining("is stopped, not paused; start it"),
    });
  });

  it("stop of a paused workspace discards its saved VM; start boots the disk", async () => {
    const dir = join(home, "workspaces", workspaceId);
    writeFileSync(vmFiles(dir).vmstate, "a saved state");
    await workspaceStore.update(workspaceId, (r) => ({ ...r, state: "paused" }));
    expect(await pyro.stopWorkspace({ workspace_id: workspaceId })).toMatchObject({
      state: "stopped",
    });
    expect(existsSync(vmFiles(dir).vmstate)).toBe(false);
    await pyro.startWorkspace({ workspace_id: workspaceId });
    const file = await pyro.readWorkspaceFile({ workspace_id: workspaceId, path: "kept.txt" });
    expect(file.content).toBe("kept\n");
  });
});
