import { copyFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../contract/errors.js";
import { NAME_PATTERN } from "../contract/workspace.js";
import { deleteSecrets, loadSecrets, saveSecrets } from "../secrets/store.js";
import { isErrno } from "../util/fs.js";
import { runChecked } from "../util/process.js";
import type { Sandboxes } from "./sandbox.js";
import { listServiceRecords, writeServiceRecord } from "./service-records.js";
import { readShellRecord, writeShellRecord } from "./shell-store.js";
import type { WorkspacePauses } from "./workspace-pause.js";
import {
  activity,
  workspaceFiles,
  workspaceStore,
  type WorkspaceRecord,
} from "./workspace-store.js";

export type Forked = WorkspaceRecord & { fork_ms: number; parent_stopped_ms: number };

/**
 * A new workspace from a started one: its records (baseline, snapshots, journal, services,
 * shells, secrets) are copied, then the parent's shim copies the VM itself (device state,
 * RAM, disk) while the parent's guest is stopped, and the child resumes from that copy as
 * from a pause. The child's published ports are dropped: their host ports are the
 * parent's. Anything half-made is removed.
 */
export async function forkWorkspace(
  sandboxes: Sandboxes<WorkspaceRecord>,
  pauses: WorkspacePauses,
  parent: WorkspaceRecord,
  name: string | undefined,
): Promise<Forked> {
  const started = performance.now();
  const parentId = parent.workspace_id;
  const childId = workspaceStore.newId();
  try {
    const now = new Date().toISOString();
    await workspaceStore.create(
      {
        ...parent,
        workspace_id: childId,
        name: name ?? null,
        state: "failed",
        error: "the fork did not finish; delete this workspace and fork again",
        created_at: now,
        ...activity(parent, now),
        network_status: null,
        resume_note: null,
        forked_from: parentId,
      },
      (dir) => copyRecords(parentId, childId, dir),
    );
    const childDir = workspaceStore.dir(childId);
    // Under the parent's lock: no stop, pause or reset of the parent while it is copied.
    const { stopped_ms } = await workspaceStore.withLock(parentId, async () => {
      await workspaceStore.requireState(parentId, "started", "start it again and fork then");
      return sandboxes.withGuest(parentId, (client) => client.fork(childDir));
    });
    await workspaceStore.update(childId, (r) => ({ ...r, state: "paused", error: null }));
    const resumed = await pauses.resume(childId);
    if (!resumed) throw new PyroError("internal", `the fork ${childId} was not left paused`);
    return {
      ...resumed.record,
      fork_ms: Math.round(performance.now() - started),
      parent_stopped_ms: stopped_ms,
    };
  } catch (error) {
    await sandboxes.destroy(childId).catch(() => {});
    await deleteSecrets(childId);
    throw error;
  }
}

/** The parent's host-side records, made the child's. */
async function copyRecords(parentId: string, childId: string, childDir: string) {
  const from = workspaceFiles(workspaceStore.dir(parentId));
  const to = workspaceFiles(childDir);
  await copyFile(from.baseline, to.baseline);
  await copyFile(from.journal, to.journal).catch((error: unknown) => {
    if (!isErrno(error, "ENOENT")) throw error; // no command ran yet
  });
  // Snapshots can be large: reflinked where the file system can.
  await runChecked("copy the workspace's snapshots", "cp", [
    "-a",
    "--reflink=auto",
    from.snapshots,
    to.snapshots,
  ]);
  for (const service of await listServiceRecords(parentId)) {
    await writeServiceRecord({ ...service, workspace_id: childId, published_ports: [] });
  }
  for (const shellId of await shellIds(parentId)) {
    const shell = await readShellRecord(parentId, shellId);
    await writeShellRecord({ ...shell, workspace_id: childId });
  }
  await saveSecrets(childId, await loadSecrets(parentId));
}

async function shellIds(workspaceId: string): Promise<string[]> {
  const names = await readdir(join(workspaceStore.dir(workspaceId), "shells")).catch(
    () => [] as string[],
  );
  return names
    .filter((n) => n.endsWith(".json"))
    .map((n) => n.slice(0, -".json".length))
    .filter((id) => NAME_PATTERN.test(id));
}
