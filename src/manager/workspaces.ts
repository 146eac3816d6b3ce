import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { z } from "zod";
import { LIMITS } from "../contract/defaults.js";
import { PyroError } from "../contract/errors.js";
import { parseParams } from "../contract/validate.js";
import {
  CreateWorkspaceParams,
  ExecWorkspaceParams,
  forkWorkspace,
  logsWorkspace,
  updateWorkspace,
  StartWorkspaceParams,
  WorkspaceIdParams,
  type ExecWorkspaceResult,
} from "../contract/workspace.js";
import type { ExecHandlers } from "../guest/client.js";
import type { ShimClient } from "../shim/client.js";
import { vmFiles } from "../shim/launch.js";
import { readFileTail } from "../vmm/console-log.js";
import { hostVmmForced } from "../vmm/select.js";
import { buildStateDisk, stateDisksBuildable } from "./state-disk.js";
import { networkStatus } from "./network.js";
import {
  DEFAULT_ARCHIVE_LIMITS,
  detectSeed,
  extractArchive,
  packDirectory,
} from "../workspace/archive.js";
import { guestPath, normalizeWorkspacePath } from "../workspace/paths.js";
import { createStateDisk } from "./boot.js";
import { commandResult } from "./command-result.js";
import type { SandboxRuntime } from "./runtime.js";
import {
  checkHostLimits,
  refuseUnbuiltFeatures,
  Sandboxes,
  type BeforeStopHook,
} from "./sandbox.js";
import { pushArchive } from "./workspace-guest.js";
import { forkWorkspace as forkFrom, type Forked } from "./workspace-fork.js";
import { savingAtTtl, WorkspacePauses } from "./workspace-pause.js";
import type { Redactor } from "../secrets/redact.js";
import {
  deleteSecrets,
  loadSecrets,
  readSecretInputs,
  resolveSecretEnv,
  saveSecrets,
  secretSummaries,
} from "../secrets/store.js";
import {
  materializeSecrets,
  redactingHandlers,
  redactorOf,
  redactStrings,
  withRedactedErrors,
} from "../secrets/workspace.js";
import {
  activity,
  appendJournal,
  readJournal,
  updateWorkspaceRecord,
  workspaceDir,
  workspaceFiles,
  workspaceStore,
  type WorkspaceRecord,
} from "./workspace-store.js";

const JOURNAL_TAIL_BYTES = 4096;
const workspaceIdOf = (input: z.input<typeof WorkspaceIdParams>) =>
  parseParams(WorkspaceIdParams, input).workspace_id;

/** Persistent workspaces: lifecycle, exec and the journal. Content operations build on it. */
export class WorkspaceManager {
  private readonly sandboxes: Sandboxes<WorkspaceRecord>;
  private readonly pauses: WorkspacePauses;

  constructor(private readonly runtime: SandboxRuntime) {
    this.sandboxes = new Sandboxes(workspaceStore, runtime);
    this.pauses = new WorkspacePauses(this.sandboxes, async (client, id) =>
      materializeSecrets(client, await loadSecrets(id)),
    );
  }

  /**
   * Validates everything on the host first (resources, seed path), captures the
   * immutable baseline archive, builds the state disk holding it on the host (or, where
   * that cannot be done, unpacks it in the guest after boot), then boots the VM.
   * Any failure removes the half-made workspace.
   */
  async create(input: z.input<typeof CreateWorkspaceParams>): Promise<WorkspaceRecord> {
    const params = parseParams(CreateWorkspaceParams, input);
    checkHostLimits(params.vcpu_count, params.mem_mib);
    if (params.allowed_domains.length && params.network_policy === "off") {
      throw new PyroError(
        "invalid_argument",
        'allowed_domains limits egress, so it needs network_policy "egress" (or "egress+published-ports"); add --network-policy egress',
        { details: { field: "allowed_domains" } },
      );
    }
    refuseUnbuiltFeatures(params);
    const secrets = await readSecretInputs(params.secrets);
    const seed = params.seed_path ? await detectSeed(params.seed_path) : undefined;
    const id = workspaceStore.newId();
    const now = new Date().toISOString();
    const onHost = await contentOnHost();
    let baseline: Buffer = Buffer.alloc(0);
    try {
      const record = await workspaceStore.create(
        {
          workspace_id: id,
          name: params.name ?? null,
          labels: params.labels,
          environment: params.environment,
          // A disk built on the host is whole before this record exists.
          state: onHost ? "stopped" : "failed",
          vcpu_count: params.vcpu_count,
          mem_mib: params.mem_mib,
          ttl_seconds: params.ttl_seconds,
          created_at: now,
          ...activity({ ttl_seconds: params.ttl_seconds }, now),
          network_policy: params.network_policy,
          allowed_domains: [...new Set(params.allowed_domains)],
          network_status: null,
          workspace_seed: { mode: seed?.mode ?? "empty", seed_path: seed?.path ?? null },
          secrets: secretSummaries(secrets),
          command_count: 0,
          last_command: null,
          reset_count: 0,
          last_reset_at: null,
          service_count: 0,
          running_service_count: 0,
          execution_mode: "guest",
          acceleration: null,
          error: onHost ? null : "workspace creation did not finish; delete it and create it again",
        },
        async (dir) => {
          const files = workspaceFiles(dir);
          await mkdir(files.snapshots, { recursive: true, mode: 0o700 });
          baseline = await seedArchive(seed);
          await writeFile(files.baseline, baseline, { mode: 0o600 });
          if (onHost) await buildStateDisk(dir, files.baseline, "user");
          await saveSecrets(id, secrets);
        },
      );
      this.runtime.progress({ scope: "workspace", phase: "boot", fields: { workspace_id: id } });
      return await this.bootWithContent(record, onHost ? undefined : baseline, {}, params.cold);
    } catch (error) {
      await this.sandboxes.destroy(id);
      await deleteSecrets(id);
      throw error;
    }
  }

  async list() {
    const workspaces: WorkspaceRecord[] = [];
    for (const id of await workspaceStore.ids()) {
      const record = await workspaceStore.reconciled(id).catch(() => undefined);
      if (record) workspaces.push(record);
    }
    return { workspaces };
  }

  /** The record, reconciled, with the live network of a started workspace that has one. */
  async status(input: { workspace_id: string }): Promise<WorkspaceRecord> {
    const record = await workspaceStore.reconciled(workspaceIdOf(input));
    if (record.state !== "started" || record.network_policy === "off") return record;
    const network = await this.withGuest(record.workspace_id, (client) => client.networkInfo())
      // A shim that just went away: the record says what state that left.
      .catch(() => null);
    return { ...record, network_status: network && networkStatus(network) };
  }

  async update(input: z.input<typeof updateWorkspace.params>): Promise<WorkspaceRecord> {
    const params = parseParams(updateWorkspace.params, input);
    await workspaceStore.reconciled(params.workspace_id);
    return updateWorkspaceRecord(params.workspace_id, (record) => {
      const labels = { ...record.labels, ...params.labels };
      for (const key of params.clear_labels) delete labels[key];
      return { ...record, name: params.name ?? record.name, labels };
    });
  }

  async logs(input: z.input<typeof logsWorkspace.params>) {
    const params = parseParams(logsWorkspace.params, input);
    await workspaceStore.load(params.workspace_id);
    return {
      workspace_id: params.workspace_id,
      ...(await readJournal(params.workspace_id, params.limit)),
      network_refusals: await networkRefusals(params.workspace_id),
    };
  }

  async delete(input: { workspace_id: string }) {
    const id = workspaceIdOf(input);
    await this.sandboxes.delete(id);
    await deleteSecrets(id);
    return { workspace_id: id, deleted: true as const };
  }

  stop(input: { workspace_id: string }): Promise<WorkspaceRecord> {
    return this.sandboxes.stop(workspaceIdOf(input));
  }

  /** Boots a stopped or failed workspace; a paused one is resumed instead. */
  async start(input: z.input<typeof StartWorkspaceParams>): Promise<WorkspaceRecord> {
    const { workspace_id: id, cold } = parseParams(StartWorkspaceParams, input);
    const resumed = await this.pauses.resume(id);
    if (resumed) return resumed.record;
    return this.sandboxes.start(
      id,
      "run commands with workspace_exec",
      async (client) => materializeSecrets(client, await loadSecrets(id)),
      { cold },
    );
  }

  /** Saves the whole VM on the host and ends its processes there; see {@link resume}. */
  pause(input: { workspace_id: string }): Promise<WorkspaceRecord & { pause_ms: number }> {
    return this.pauses.pause(workspaceIdOf(input));
  }

  /** Restores a paused workspace (or boots its disk, saying why); a started one is left. */
  resume(input: { workspace_id: string }) {
    return this.pauses.resumeCall(workspaceIdOf(input));
  }

  /** A new workspace from this one's memory and disk (a paused one is resumed first). */
  async fork(input: z.input<typeof forkWorkspace.params>): Promise<Forked> {
    const params = parseParams(forkWorkspace.params, input);
    const parent = await this.requireStarted(params.workspace_id);
    return forkFrom(this.sandboxes, this.pauses, parent, params.name);
  }

  /** Runs one command; the journal and the record's counters follow it. */
  async exec(
    input: z.input<typeof ExecWorkspaceParams>,
    handlers: ExecHandlers = {},
  ): Promise<z.output<typeof ExecWorkspaceResult>> {
    const params = parseParams(ExecWorkspaceParams, input);
    const cwd = guestPath(normalizeWorkspacePath(params.cwd, "cwd"));
    await this.requireStarted(params.workspace_id);
    const secrets = await loadSecrets(params.workspace_id);
    const env = resolveSecretEnv(params.secret_env, secrets);
    const redactor = redactorOf(secrets);
    return withRedactedErrors(redactor, () =>
      this.execInGuest(params, { cwd, env, redactor, handlers }),
    );
  }

  /**
   * The exec after its checks: the guest gets the command as given, everything shown or
   * kept (result, journal, record) has secret values redacted.
   */
  private async execInGuest(
    params: z.output<typeof ExecWorkspaceParams>,
    run: { cwd: string; env: Record<string, string>; redactor: Redactor; handlers: ExecHandlers },
  ): Promise<z.output<typeof ExecWorkspaceResult>> {
    const { cwd, redactor } = run;
    const command = redactStrings(params.command, redactor);
    let sequence = 0;
    await updateWorkspaceRecord(params.workspace_id, (r) => {
      sequence = r.command_count + 1;
      return { ...r, command_count: sequence, ...activity(r) };
    });
    const startedAt = new Date().toISOString();
    const streamed = redactingHandlers(run.handlers, redactor);
    const output = await this.withGuest(params.workspace_id, (client) =>
      client.exec(
        {
          argv: params.command,
          ...(Object.keys(run.env).length ? { env: run.env } : {}),
          cwd,
          timeout_ms: params.timeout_seconds * 1000,
          max_output_bytes: LIMITS.max_output_bytes,
          sync: true,
        },
        streamed.handlers,
      ),
    );
    streamed.finish(output);
    const result = {
      workspace_id: params.workspace_id,
      sequence,
      cwd,
      ...commandResult(command, {
        ...output,
        stdout: redactor.redactBytes(output.stdout, { truncated: output.stdout_truncated }),
        stderr: redactor.redactBytes(output.stderr, { truncated: output.stderr_truncated }),
      }),
    };
    const exitCode = result.exit_code;
    await appendJournal(params.workspace_id, {
      sequence,
      command,
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
              command,
              exit_code: exitCode,
              finished_at: new Date().toISOString(),
            },
    }));
    return result;
  }

  // ---- shared with the content operations and guest-process managers ----

  /**
   * Throws `conflict` (with the fix) unless the workspace's VM is running; a paused one is
   * resumed first, as by every call that needs the guest.
   */
  async requireStarted(workspaceId: string): Promise<WorkspaceRecord> {
    await this.pauses.resumeIfPaused(workspaceId);
    return workspaceStore.requireState(
      workspaceId,
      "started",
      `run \`pyro workspace start ${workspaceId}\` (MCP: workspace_start) first`,
    );
  }

  /**
   * The reconciled record, a paused workspace resumed first: for calls that work on the
   * guest's processes (services, shells) and must not read a pause as their end.
   */
  async active(workspaceId: string): Promise<WorkspaceRecord> {
    await this.pauses.resumeIfPaused(workspaceId);
    return this.status({ workspace_id: workspaceId });
  }

  /**
   * One connection to the workspace's shim for the duration of `fn`. A call that meets
   * the idle TTL's pause (refused before the guest saw a request: the TTL only fires
   * when no request ran for that long) waits it out, resumes the VM and runs once more.
   * `locked`: the caller holds the state lock (the resume then does not take it).
   */
  async withGuest<T>(
    workspaceId: string,
    fn: (client: ShimClient) => Promise<T>,
    options: { locked?: boolean } = {},
  ): Promise<T> {
    try {
      return await this.sandboxes.withGuest(workspaceId, fn);
    } catch (error) {
      if (!savingAtTtl(error)) throw error;
      await this.pauses.waitOutTtlPause(workspaceId, options);
      return this.sandboxes.withGuest(workspaceId, fn);
    }
  }

  async touch(workspaceId: string): Promise<void> {
    await updateWorkspaceRecord(workspaceId, (r) => ({ ...r, ...activity(r) }));
  }

  /**
   * Registers a hook that workspace stop, reset and delete run before the VM goes, under
   * the workspace's state lock: where services and shells are stopped and recorded.
   */
  onBeforeStop(hook: BeforeStopHook): void {
    this.sandboxes.onBeforeStop(hook);
  }

  /**
   * Recreates the sandbox from an archive file (reset): power off, a writable layer
   * holding the archive, boot. The caller holds the state lock.
   */
  async recreate(workspaceId: string, archive: string, snapshot: string): Promise<WorkspaceRecord> {
    await this.sandboxes.powerOff(workspaceId, "reset");
    if (await contentOnHost()) return this.recreateOnHost(workspaceId, archive, snapshot);
    // Until the archive is unpacked the workspace is not what it claims to be: say so,
    // so an interrupted reset shows as failed with the way out.
    const record = await updateWorkspaceRecord(workspaceId, (r) => ({
      ...r,
      ...workspaceStore.kind.endedFields,
      state: "failed",
      error: `a reset to "${snapshot}" did not finish; run workspace reset again`,
    }));
    await createStateDisk(workspaceDir(workspaceId));
    return this.bootWithContent(record, await readFile(archive), {
      reset_count: record.reset_count + 1,
      last_reset_at: new Date().toISOString(),
    });
  }

  /**
   * The old disk stays until the new one is whole, so a reset that fails before the swap
   * (a refused snapshot, a full host disk) leaves the workspace stopped as it was.
   */
  private async recreateOnHost(id: string, archive: string, snapshot: string) {
    const ended = (r: WorkspaceRecord): WorkspaceRecord => ({
      ...r,
      ...workspaceStore.kind.endedFields,
      // Powered off: a paused VM's saved state went with it too.
      state: r.state === "started" || r.state === "paused" ? "stopped" : r.state,
    });
    await updateWorkspaceRecord(id, ended);
    await buildStateDisk(workspaceDir(id), archive, snapshot === "baseline" ? "user" : "guest");
    const record = await updateWorkspaceRecord(id, (r) => ({
      ...ended(r),
      state: "stopped",
      error: null,
      reset_count: r.reset_count + 1,
      last_reset_at: new Date().toISOString(),
    }));
    return this.bootWithContent(record);
  }

  /**
   * Boots, unpacks `archive` (when the disk does not hold the content yet) into
   * /workspace, and only then marks the workspace started.
   */
  private async bootWithContent(
    record: WorkspaceRecord,
    archive?: Buffer,
    changes: Partial<WorkspaceRecord> = {},
    cold = false,
  ): Promise<WorkspaceRecord> {
    const id = record.workspace_id;
    const { acceleration } = await this.sandboxes.boot(record, { contentPending: true, cold });
    await this.sandboxes.withGuest(id, async (client) => {
      if (archive) await pushArchive(client, archive, "");
      await materializeSecrets(client, await loadSecrets(id));
    });
    return this.sandboxes.markStarted(id, acceleration, changes);
  }
}

/**
 * Whether workspace content goes into the state disk on the host. Not under the
 * host-process test driver, whose "guest" tree is a host directory beside the disk.
 */
async function contentOnHost(): Promise<boolean> {
  return !hostVmmForced() && (await stateDisksBuildable());
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

/** How much of the refusal log `workspace logs` shows: its newest lines. */
const NETWORK_REFUSAL_LINES = 50;
const NETWORK_REFUSAL_TAIL_BYTES = 16 * 1024;

/**
 * The newest lines of the shim's refusal log (`src/network/refusals.ts` writes one line
 * per reason and destination per second, guest-chosen names already made printable).
 */
async function networkRefusals(workspaceId: string): Promise<string[]> {
  const path = vmFiles(workspaceDir(workspaceId)).networkLog;
  const tail = await readFileTail(path, NETWORK_REFUSAL_TAIL_BYTES);
  const lines = tail.split("\n");
  // A tail cut mid-line starts with a fragment; only whole lines are shown.
  if (tail.length >= NETWORK_REFUSAL_TAIL_BYTES) lines.shift();
  return lines.filter((line) => line !== "").slice(-NETWORK_REFUSAL_LINES);
}
