import { rm } from "node:fs/promises";
import { PyroError } from "../contract/errors.js";
import type { ShimClient } from "../shim/client.js";
import type { ShimPublishedPort } from "../guest/ops/index.js";
import { vmFiles } from "../shim/launch.js";
import { pathExists } from "../util/fs.js";
import { isProcessAlive } from "../util/process.js";
import { checkSavedState } from "../vmstate/saved-state.js";
import { liveState, ownsPid } from "./records.js";
import { waitForExit, type Sandboxes } from "./sandbox.js";
import { listServiceRecords, writeServiceRecord } from "./service-records.js";
import { workspaceStore, type WorkspaceRecord } from "./workspace-store.js";

/** How long a shim may take to exit once it has saved its VM. */
const SHIM_EXIT_MS = 5_000;
/** How long a save at the idle TTL (which a call may meet) may take, exit included. */
export const TTL_SAVE_MS = 60_000;

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
      let record = await workspaceStore.reconciled(id);
      // A resume whose caller died mid-way leaves `paused` over a running VM: it is
      // finished first (then paused below), so no pause is claimed over a live shim.
      if (record.state === "paused") record = (await this.adoptRunning(id)) ?? record;
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
      // The idle TTL (or a pause whose caller died) may be pausing it: that pause is this one.
      const final = await this.sandboxes
        .withGuest(id, (client) => client.pause())
        .catch((error: unknown) => {
          if (savingFor(error) !== "ttl" && savingFor(error) !== "pause") throw error;
          return undefined;
        });
      if (shimPid) await this.ensureShimExited(id, shimPid, final?.state);
      const paused = await workspaceStore.update(id, (r) => ({
        ...r,
        state: "paused",
        error: null,
      }));
      return { ...paused, pause_ms: Math.round(performance.now() - started) };
    });
  }

  /**
   * A paused VM's shim exits right after its reply. One that does not is ended here, and
   * the pause counts only when the shim said `paused` (undefined: an idle-TTL pause, whose
   * status file says) and left a complete saved state.
   */
  private async ensureShimExited(id: string, shimPid: number, said: string | undefined) {
    const dir = workspaceStore.dir(id);
    await waitForExit(shimPid, said ? SHIM_EXIT_MS : TTL_SAVE_MS);
    if (isProcessAlive(shimPid)) {
      await killOwnedProcesses(dir);
      await waitForExit(shimPid, SHIM_EXIT_MS);
    }
    const status = said ?? (await liveState(dir)).shim?.state;
    if (status === "paused" && (await pathExists(vmFiles(dir).savedState))) return;
    throw new PyroError(
      "unavailable",
      `the pause of workspace ${id} did not complete (its supervisor ended ${status ?? "without a status"}); start it again with \`pyro workspace start ${id}\` (MCP: workspace_start)`,
      { details: { workspace_id: id } },
    );
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

  /**
   * What a call refused by an idle-TTL save ({@link savingAtTtl}) does before it tries
   * once more: waits for the shim to finish the pause and exit, then resumes the VM.
   * `locked`: the caller holds the state lock. Throws `conflict` when the VM did not come
   * back (the save failed and the shim stopped it instead).
   */
  async waitOutTtlPause(id: string, options: { locked?: boolean } = {}): Promise<void> {
    const shimPid = (await liveState(workspaceStore.dir(id))).shim?.shim_pid;
    if (shimPid) await waitForExit(shimPid, TTL_SAVE_MS);
    if (options.locked) await this.resumeLocked(id);
    else await this.resumeIfPaused(id);
    await workspaceStore.requireState(
      id,
      "started",
      `its idle pause did not complete; run \`pyro workspace start ${id}\` (MCP: workspace_start)`,
    );
  }

  /** {@link resume} for a caller that holds the state lock. */
  async resumeLocked(id: string): Promise<Resumed | undefined> {
    const record = await workspaceStore.reconciled(id);
    if (record.state !== "paused") return undefined;
    const started = performance.now();
    const running = await this.adoptRunning(id);
    if (running) return { record: running, resumed_from: "memory", resume_ms: 0 };
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
   * A resume whose caller died after it started the shim: the shim restores (or has
   * restored) the VM on its own, and killing it to boot again would restore the same
   * state twice. So a booting shim is waited for, and a ready one finishes the resume as
   * its caller would have: the spent state goes, published ports are forwarded again.
   * Undefined when no shim runs (or it failed: its boot cleans up after it).
   */
  private async adoptRunning(id: string): Promise<WorkspaceRecord | undefined> {
    const dir = workspaceStore.dir(id);
    let live = await liveState(dir);
    if (!live.shimAlive) return undefined;
    if (live.shim?.state === "booting") {
      await this.sandboxes.withGuest(id, (client) => client.waitReady()).catch(() => undefined);
      live = await liveState(dir);
    }
    if (!live.shimAlive || live.shim?.state !== "ready") return undefined;
    await rm(vmFiles(dir).savedState, { force: true });
    await rm(vmFiles(dir).vmstate, { force: true });
    await this.sandboxes.withGuest(id, (client) => republishPorts(client, id));
    return this.sandboxes.markStarted(id, live.shim.acceleration);
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
 * dropped from its service's record (a service stop then has nothing to remove). A port
 * the shim forwards already (its resume's caller died after it published) is kept.
 */
async function republishPorts(client: ShimClient, id: string): Promise<void> {
  const services = (await listServiceRecords(id)).filter((s) => s.published_ports.length > 0);
  if (services.length === 0) return;
  const forwarded = (await client.networkInfo()).published_ports;
  const isForwarded = (port: ShimPublishedPort) =>
    forwarded.some((f) => f.host_port === port.host_port && f.guest_port === port.guest_port);
  for (const service of services) {
    const kept = [];
    for (const port of service.published_ports) {
      const made = isForwarded(port)
        ? port
        : await client.publishPort(port.guest_port, port.host_port).catch(() => null);
      if (made) kept.push(made);
    }
    if (kept.length !== service.published_ports.length)
      await writeServiceRecord({ ...service, published_ports: kept });
  }
}

/** What the shim was saving the VM for when it refused a call with `conflict`. */
function savingFor(error: unknown): unknown {
  return error instanceof PyroError && error.code === "conflict" ? error.details.saving : undefined;
}

/** The conflict a call meets while the shim saves the VM at its idle TTL. */
export function savingAtTtl(error: unknown): boolean {
  return savingFor(error) === "ttl";
}

/** Kills the sandbox's shim and VMM, whatever their status file says. */
async function killOwnedProcesses(dir: string): Promise<void> {
  const shim = (await liveState(dir)).shim;
  for (const pid of [shim?.shim_pid, shim?.vmm_pid]) {
    if (!pid || !ownsPid(pid, dir)) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}
