import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { z } from "zod";
import { LIMITS } from "../contract/defaults.js";
import { PyroError } from "../contract/errors.js";
import { parseParams } from "../contract/validate.js";
import {
  CreateWorkspaceParams,
  ExecWorkspaceParams,
  logsWorkspace,
  updateWorkspace,
  WorkspaceIdParams,
  type ExecWorkspaceResult,
} from "../contract/workspace.js";
import type { ExecHandlers } from "../guest/client.js";
import { ShimClient } from "../shim/client.js";
import {
  DEFAULT_ARCHIVE_LIMITS,
  detectSeed,
  extractArchive,
  packDirectory,
} from "../workspace/archive.js";
import { guestPath, normalizeWorkspacePath, WORKSPACE_ROOT } from "../workspace/paths.js";
import { bootSandbox, createSandboxDir, createStateDisk } from "./boot.js";
import { listIds, writeRecord } from "./records.js";
import type { SandboxRuntime } from "./runtime.js";
import { commandResult } from "./command-result.js";
import { checkHostLimits, destroySandbox, newId } from "./vms.js";
import { pushArchive } from "./workspace-guest.js";
import {
  appendJournal,
  loadWorkspace,
  readJournal,
  reconciledWorkspace,
  updateWorkspaceRecord,
  withWorkspaceLock,
  workspaceDir,
  workspaceFiles,
  type WorkspaceRecord,
} from "./workspace-store.js";
import { vmFiles } from "../shim/launch.js";
import { clearShellRecords } from "./shell-store.js";

const JOURNAL_TAIL_BYTES = 4096;
const workspaceIdOf = (input: z.input<typeof WorkspaceIdParams>) =>
  parseParams(WorkspaceIdParams, input).workspace_id;

/** Persistent workspaces: lifecycle, exec and the journal. Content operations build on it. */
export class WorkspaceManager {
  constructor(private readonly runtime: SandboxRuntime) {}

  /**
   * Validates everything on the host first (resources, seed path), captures the
   * immutable baseline archive, then boots the VM and unpacks the baseline into it.
   * Any failure removes the half-made workspace.
   */
  async create(input: z.input<typeof CreateWorkspaceParams>): Promise<WorkspaceRecord> {
    const params = parseParams(CreateWorkspaceParams, input);
    checkHostLimits(params.vcpu_count, params.mem_mib);
    if (params.network_policy !== "off") {
      throw new PyroError(
        "unavailable",
        `network_policy "${params.network_policy}" is not available yet; use "off"`,
      );
    }
    if (params.secrets.length)
      throw new PyroError(
        "unavailable",
        "workspace secrets are not available yet; create the workspace without secrets",
      );
    if (params.allow_host_compat)
      throw new PyroError("unavailable", "host compatibility mode is not available yet");
    const seed = params.seed_path ? await detectSeed(params.seed_path) : undefined;
    const id = newId("ws");
    const dir = workspaceDir(id);
    const now = new Date().toISOString();
    const record: WorkspaceRecord = {
      workspace_id: id,
      name: params.name ?? null,
      labels: params.labels,
      environment: params.environment,
      state: "failed",
      vcpu_count: params.vcpu_count,
      mem_mib: params.mem_mib,
      ttl_seconds: params.ttl_seconds,
      created_at: now,
      expires_at: expiry(now, params.ttl_seconds),
      last_activity_at: now,
      network_policy: params.network_policy,
      workspace_seed: { mode: seed?.mode ?? "empty", seed_path: seed?.path ?? null },
      secrets: [],
      command_count: 0,
      last_command: null,
      reset_count: 0,
      last_reset_at: null,
      service_count: 0,
      running_service_count: 0,
      execution_mode: "guest",
      acceleration: null,
      error: "workspace creation did not finish; delete it and create it again",
    };
    try {
      await createSandboxDir(dir);
      await mkdir(workspaceFiles(dir).snapshots, { recursive: true, mode: 0o700 });
      const baseline = await seedArchive(seed);
      await writeFile(workspaceFiles(dir).baseline, baseline, { mode: 0o600 });
      await writeRecord(dir, record);
      this.runtime.progress({ scope: "workspace", phase: "boot", fields: { workspace_id: id } });
      const booted = await this.boot(record, { contentPending: true });
      await this.withGuest(id, (client) => pushArchive(client, baseline, ""));
      return await this.markStarted(id, booted);
    } catch (error) {
      await destroySandbox(dir);
      throw error;
    }
  }

  async list() {
    const workspaces: WorkspaceRecord[] = [];
    for (const id of await listIds("workspaces")) {
      const record = await reconciledWorkspace(id).catch(() => undefined);
      if (record) workspaces.push(record);
    }
    return { workspaces };
  }

  status(input: { workspace_id: string }): Promise<WorkspaceRecord> {
    return reconciledWorkspace(workspaceIdOf(input));
  }

  async update(input: z.input<typeof updateWorkspace.params>): Promise<WorkspaceRecord> {
    const params = parseParams(updateWorkspace.params, input);
    await reconciledWorkspace(params.workspace_id);
    return updateWorkspaceRecord(params.workspace_id, (record) => {
      const labels = { ...record.labels, ...params.labels };
      for (const key of params.clear_labels) delete labels[key];
      return { ...record, name: params.name ?? record.name, labels };
    });
  }

  async logs(input: z.input<typeof logsWorkspace.params>) {
    const params = parseParams(logsWorkspace.params, input);
    await loadWorkspace(params.workspace_id);
    return {
      workspace_id: params.workspace_id,
      ...(await readJournal(params.workspace_id, params.limit)),
    };
  }

  async delete(input: { workspace_id: string }) {
    const id = workspaceIdOf(input);
    // Under the state lock, so a reset or start in flight cannot boot it again after.
    await withWorkspaceLock(id, () => destroySandbox(workspaceDir(id)));
    return { workspace_id: id, deleted: true as const };
  }

  async stop(input: { workspace_id: string }): Promise<WorkspaceRecord> {
    const id = workspaceIdOf(input);
    return withWorkspaceLock(id, async () => {
      const record = await reconciledWorkspace(id);
      if (record.state !== "started") {
        throw new PyroError(
          "conflict",
          `workspace ${id} is ${record.state}, not started; there is nothing to stop`,
        );
      }
      await this.powerOff(id);
      return updateWorkspaceRecord(id, (r) => ({ ...r, state: "stopped" }));
    });
  }

  async start(input: { workspace_id: string }): Promise<WorkspaceRecord> {
    const id = workspaceIdOf(input);
    return withWorkspaceLock(id, async () => {
      const record = await reconciledWorkspace(id);
      if (record.state === "started") {
        throw new PyroError(
          "conflict",
          `workspace ${id} is already started; run commands with workspace_exec`,
        );
      }
      await this.boot(record);
      return loadWorkspace(id);
    });
  }

  /** Runs one command; the journal and the record's counters follow it. */
  async exec(
    input: z.input<typeof ExecWorkspaceParams>,
    handlers: ExecHandlers = {},
  ): Promise<z.output<typeof ExecWorkspaceResult>> {
    const params = parseParams(ExecWorkspaceParams, input);
    if (Object.keys(params.secret_env).length) {
      throw new PyroError(
        "unavailable",
        "secret_env is not available yet (workspaces have no secrets); run without it",
      );
    }
    const cwd = guestPath(normalizeWorkspacePath(params.cwd, "cwd"));
    await this.requireStarted(params.workspace_id);
    let sequence = 0;
    await updateWorkspaceRecord(params.workspace_id, (r) => {
      sequence = r.command_count + 1;
      return { ...r, command_count: sequence, ...activity(r) };
    });
    const startedAt = new Date().toISOString();
    const output = await this.withGuest(params.workspace_id, (client) =>
      client.exec(
        {
          argv: params.command,
          cwd,
          timeout_ms: params.timeout_seconds * 1000,
          max_output_bytes: LIMITS.max_output_bytes,
          sync: true,
        },
        handlers,
      ),
    );
    const result = {
      workspace_id: params.workspace_id,
      sequence,
      cwd,
      ...commandResult(params.command, output),
    };
    const exitCode = result.exit_code;
    await appendJournal(params.workspace_id, {
      sequence,
      command: params.command,
      cwd,
      exit_code: exitCode,
      timed_out: output.timed_out,
      started_at: startedAt,
      duration_ms: result.duration_ms,
      stdout_tail: result.stdout.slice(-JOURNAL_TAIL_BYTES),
      stderr_tail: result.stderr.slice(-JOURNAL_TAIL_BYTES),
    });
    await updateWorkspaceRecord(params.workspace_id, (r) => ({
      ...r,
      ...activity(r),
      last_command:
        (r.last_command?.sequence ?? 0) > sequence
          ? r.last_command
          : {
              sequence,
              command: params.command,
              exit_code: exitCode,
              finished_at: new Date().toISOString(),
            },
    }));
    return result;
  }

  // ---- shared with the content operations ----

  /** Throws `conflict` (with the fix) unless the workspace's VM is running. */
  async requireStarted(workspaceId: string): Promise<WorkspaceRecord> {
    const record = await reconciledWorkspace(workspaceId);
    if (record.state !== "started") {
      throw new PyroError(
        "conflict",
        `workspace ${workspaceId} is ${record.state}; run \`pyro workspace start ${workspaceId}\` (MCP: workspace_start) first`,
      );
    }
    return record;
  }

  /** One connection to the workspace's shim for the duration of `fn`. */
  async withGuest<T>(workspaceId: string, fn: (client: ShimClient) => Promise<T>): Promise<T> {
    const client = await ShimClient.connect(workspaceDir(workspaceId));
    try {
      return await fn(client);
    } finally {
      client.destroy();
    }
  }

  async touch(workspaceId: string): Promise<void> {
    await updateWorkspaceRecord(workspaceId, (r) => ({ ...r, ...activity(r) }));
  }

  /** Boots the workspace's VM on its existing state disk and marks it started. */
  /**
   * Boots the workspace's VM on its existing state disk. With `contentPending` the record
   * stays as it is (failed, saying why) until the caller has unpacked the content and
   * calls {@link markStarted}: a crash in between must not look like a healthy workspace.
   */
  async boot(
    record: WorkspaceRecord,
    options: { contentPending?: boolean } = {},
  ): Promise<Pick<WorkspaceRecord, "acceleration">> {
    const id = record.workspace_id;
    const dir = workspaceDir(id);
    const launch = await this.runtime.launchConfig({
      ...record,
      id,
      dir,
      ttl_action: "stop",
      delete_on_exit: false,
      workspace_root: WORKSPACE_ROOT,
    });
    try {
      const { client } = await bootSandbox(dir, launch, { claim: false });
      client.destroy();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await updateWorkspaceRecord(id, (r) => ({ ...r, state: "failed", error: message }));
      throw error;
    }
    const booted = { acceleration: launch.acceleration };
    if (!options.contentPending) await this.markStarted(id, booted);
    return booted;
  }

  async markStarted(
    workspaceId: string,
    changes: Partial<WorkspaceRecord>,
  ): Promise<WorkspaceRecord> {
    return updateWorkspaceRecord(workspaceId, (r) => ({
      ...r,
      state: "started",
      error: null,
      ...activity(r),
      ...changes,
    }));
  }

  /** Syncs and powers the VM off, keeping its disk. */
  async powerOff(workspaceId: string): Promise<void> {
    const client = await ShimClient.connect(workspaceDir(workspaceId)).catch(() => undefined);
    try {
      await client?.stop(false);
    } finally {
      client?.destroy();
    }
    // The guest's shells ended with it (stop and reset come through here).
    await clearShellRecords(workspaceId);
  }

  /** A fresh, empty writable layer: what `reset` starts from. */
  async replaceStateDisk(workspaceId: string): Promise<void> {
    const dir = workspaceDir(workspaceId);
    await rm(vmFiles(dir).stateDisk, { force: true });
    await createStateDisk(dir);
  }
}

/**
 * The baseline archive: the seed as a normalised tar. A user's archive is untrusted
 * like any other, so it is extracted with bounds first and packed again.
 */
async function seedArchive(
  seed: Awaited<ReturnType<typeof detectSeed>> | undefined,
): Promise<Buffer> {
  if (seed?.mode === "directory") return packDirectory(seed.path);
  const scratch = await mkdtemp(join(tmpdir(), "pyro-seed-"));
  try {
    if (seed) await extractArchive(seed.path, scratch, DEFAULT_ARCHIVE_LIMITS, { origin: "user" });
    return await packDirectory(scratch);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

function activity(record: WorkspaceRecord) {
  const now = new Date().toISOString();
  return { last_activity_at: now, expires_at: expiry(now, record.ttl_seconds) };
}

function expiry(fromIso: string, ttlSeconds: number): string {
  return new Date(Date.parse(fromIso) + ttlSeconds * 1000).toISOString();
}
