import { rm } from "node:fs/promises";
import { PyroError } from "../contract/errors.js";
import type { ShimClient } from "../shim/client.js";
import { vmFiles } from "../shim/launch.js";
import { checkSavedState } from "../vmstate/saved-state.js";
import { liveState } from "./records.js";
import { waitForExit, type Sandboxes } from "./sandbox.js";
import { listServiceRecords, writeServiceRecord } from "./service-records.js";
import { workspaceStore, type WorkspaceRecord } from "./workspace-store.js";

/** How long a shim may take to exit once it has saved its VM. */
const SHIM_EXIT_MS = 5_000;

export interface Resumed {
  record: WorkspaceRecord;
  resumed_from: "memory" | "disk";
  resume_ms: number;
}

/**
 * Pause and resume of workspaces (design 6 of the VM-state work): a pause has the shim
 * save the whole VM into the workspace's directory and exit, so it outlives every host
 * process; a resume boots the shim restoring that state, or, when the host can no longer
 * restore it (another QEMU, kernel, agent, image, or a damaged save), boots the disk and
 * says so in `resume_note`.
 */
export class WorkspacePauses {
  constructor(
    private readonly sandboxes: Sandboxes<WorkspaceRecord>,
    /** What a workspace booted from its disk needs in its guest (its secrets). */
    private readonly coldPrepare: (client: ShimClient, id: string) => Promise<void>,
  ) {}

  async pause(id: string): Promise<WorkspaceRecord & { pause_ms: number }> {
    return workspaceStore.withLock(id, async () => {
      const record = await workspaceStore.reconciled(id);
      if (record.state === "paused") return { ...record, pause_ms: 0 };
      if (record.state !== "started") {
        throw new PyroError(
          "conflict",
          `workspace ${id} is ${record.state}; only a started workspace can be paused`,
          { details: { workspace_id: id, state: record.state } },
        );
      }
      const started = performance.now();
      const shimPid = (await liveState(workspaceStore.dir(id))).shim?.shim_pid;
      await this.sandboxes.withGuest(id, (client) => client.pause());
      if (shimPid) await waitForExit(shimPid, SHIM_EXIT_MS);
      const paused = await workspaceStore.update(id, (r) => ({
        ...r,
        state: "paused",
        error: null,
      }));
      return { ...paused, pause_ms: Math.round(performance.now() - started) };
    });
  }

  /**
   * Resumes a paused workspace under its state lock; undefined when it is not paused
   * (started already, or stopped: the caller says what that means for it).
   */
  async resume(id: string): Promise<Resumed | undefined> {
    return workspaceStore.withLock(id, () => this.resumeLocked(id));
  }

  /** The resume operation: a started workspace is left as it is, a stopped one refused. */
  async resumeCall(id: string) {
    const resumed = await this.resume(id);
    if (resumed) {
      const { record, ...how } = resumed;
      return { ...record, ...how };
    }
    const record = await workspaceStore.reconciled(id);
    if (record.state === "started")
      return { ...record, resume_ms: 0, resumed_from: "running" as const };
    throw new PyroError(
      "conflict",
      `workspace ${id} is ${record.state}, not paused; start it with \`pyro workspace start ${id}\` (MCP: workspace_start)`,
      { details: { workspace_id: id, state: record.state } },
    );
  }

  /**
   * {@link resume} when the record says paused: the lock is taken only then, so calls on
   * a started workspace (every exec) stay as concurrent as before.
   */
  async resumeIfPaused(id: string): Promise<void> {
    if ((await workspaceStore.reconciled(id)).state === "paused") await this.resume(id);
  }

  /** {@link resume} for a caller that holds the state lock. */
  async resumeLocked(id: string): Promise<Resumed | undefined> {
    const record = await workspaceStore.reconciled(id);
    if (record.state !== "paused") return undefined;
    const started = performance.now();
    const live = await liveState(workspaceStore.dir(id));
    if (live.shimAlive && live.shim?.state === "ready") {
      // A resume whose caller died after the restore, before it could record it: done.
      const running = await this.sandboxes.markStarted(id, live.shim.acceleration);
      return { record: running, resumed_from: "memory", resume_ms: 0 };
    }
    const warm = await this.bootSaved(record).catch((error: Error) => failed(error));
    const note = typeof warm === "string" ? warm : null;
    const { acceleration } = typeof warm === "string" ? await this.bootDisk(id) : warm;
    const resumeNote = note && `${note}; its disk was booted instead: ${LOST}`;
    const resumed = await this.sandboxes.markStarted(id, acceleration, {
      resume_note: resumeNote,
    });
    return {
      record: resumed,
      resumed_from: note === null ? "memory" : "disk",
      resume_ms: Math.round(performance.now() - started),
    };
  }

  /**
   * The way out when the saved VM cannot be restored: services and shells ended with it
   * (the stop hooks record that, and the saved files go), then the disk boots as a start
   * would.
   */
  private async bootDisk(id: string) {
    await this.sandboxes.powerOff(id, "stop");
    return this.sandboxes.boot(await workspaceStore.load(id), {
      contentPending: true,
      prepare: (client) => this.coldPrepare(client, id),
    });
  }

  /**
   * Boots the shim restoring the saved VM. Resolves with the boot once it runs, or with
   * the reason it cannot be used (before anything was started); rejects when the restore
   * failed.
   */
  private async bootSaved(record: WorkspaceRecord) {
    const id = record.workspace_id;
    const dir = workspaceStore.dir(id);
    let unusable: string | undefined;
    const booted = await this.sandboxes
      .boot(record, {
        contentPending: true,
        restore: async (launch) => {
          const check = await checkSavedState(dir, launch);
          if (check.usable) return { vmstate_path: vmFiles(dir).vmstate, kind: "saved" };
          unusable = check.reason;
          throw new SavedStateUnusable();
        },
        prepare: (client) => republishPorts(client, id),
      })
      .catch((error: unknown) => {
        if (!(error instanceof SavedStateUnusable)) throw error;
        return undefined;
      });
    if (!booted) return `the saved VM could not be restored: ${unusable}`;
    // Restored: the RAM file is the running VM's memory now; the device state is spent.
    await rm(vmFiles(dir).savedState, { force: true });
    await rm(vmFiles(dir).vmstate, { force: true });
    return booted;
  }
}

/** What a cold resume loses, said in every note. */
const LOST = "processes, services and shells that ran in it were lost";

function failed(error: Error): string {
  return `restoring the saved VM failed (${error.message.split("\n")[0]})`;
}

/** Thrown by the restore choice to boot nothing at all; caught by {@link bootSaved}. */
class SavedStateUnusable extends Error {}

/**
 * The host side of published ports went with the old shim; the services still listen in
 * the guest. Each port is forwarded again on the same host port; one that is taken now is
 * dropped from its service's record (a service stop then has nothing to remove).
 */
async function republishPorts(client: ShimClient, id: string): Promise<void> {
  for (const service of await listServiceRecords(id)) {
    if (service.published_ports.length === 0) continue;
    const kept = [];
    for (const port of service.published_ports) {
      const made = await client.publishPort(port.guest_port, port.host_port).catch(() => null);
      if (made) kept.push(made);
    }
    if (kept.length !== service.published_ports.length)
      await writeServiceRecord({ ...service, published_ports: kept });
  }
}
