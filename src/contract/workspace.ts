import { z } from "zod";
import { DEFAULTS, LIMITS } from "./defaults.js";
import {
  cold,
  command,
  count,
  environment,
  exitCode,
  integer,
  memMib,
  readMaxBytes,
  timeoutSeconds,
  vcpuCount,
} from "./fields.js";
import { ActivePublishedPort, allowedDomains, NetworkPolicy, NetworkStatus } from "./network.js";
import { changes, defineOperation, readOnly } from "./operation.js";
import { AccelerationMode, bootRecordFields, ExecutionMode, RunResult } from "./vm.js";

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const nameRule = `must match ${NAME_PATTERN.source}`;

const workspaceId = z
  .string()
  .min(1)
  .describe('The workspace id returned by workspace_create, e.g. "ws_0123456789ab".');
const labels = z
  .record(
    z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/, "label keys are 1-63 of A-Za-z0-9._/-"),
    z.string().max(256),
  )
  .describe("Free-form key/value labels for finding workspaces later.");
const workspacePath = z
  .string()
  .describe("A path relative to /workspace, or absolute under /workspace.");
const snapshotName = z
  .string()
  .regex(NAME_PATTERN, `snapshot names ${nameRule}`)
  .describe("Snapshot name.");
export const WorkspaceIdParams = z.object({ workspace_id: workspaceId });
export const StartWorkspaceParams = WorkspaceIdParams.extend({ cold });

export { NetworkPolicy, ActivePublishedPort };

export const SecretInput = z.union([
  z.object({ name: z.string(), value: z.string() }),
  z.object({ name: z.string(), file_path: z.string() }),
]);

export const CreateWorkspaceParams = z.object({
  environment,
  name: z.string().max(128).optional().describe("A human name for the workspace."),
  labels: labels.default({}),
  vcpu_count: vcpuCount,
  mem_mib: memMib,
  ttl_seconds: z
    .number()
    .int()
    .min(1)
    .max(LIMITS.max_ttl_seconds)
    .default(DEFAULTS.ttl_seconds)
    .describe(
      "Pause the workspace after this many idle seconds (stop it, keeping its files, where its VM cannot be saved).",
    ),
  network_policy: NetworkPolicy.default("off").describe(
    "off: no network device; egress: outbound access; egress+published-ports: plus host ports.",
  ),
  allowed_domains: allowedDomains,
  seed_path: z
    .string()
    .optional()
    .describe("Host directory or .tar/.tar.gz/.tgz archive copied into /workspace at creation."),
  secrets: z.array(SecretInput).default([]).describe("Secrets made available to commands by name."),
  cold,
  allow_host_compat: z.boolean().default(false).describe("Allow running without a VM."),
});

export const WorkspaceState = z
  .enum(["started", "stopped", "failed", "paused"])
  .describe(
    "paused: the whole VM (memory, processes, shells) is saved on the host; any call that needs the guest resumes it first.",
  );

export const WorkspaceRecord = z.object({
  workspace_id: z.string(),
  name: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  environment: z.string(),
  state: WorkspaceState,
  vcpu_count: integer(1),
  mem_mib: integer(LIMITS.min_mem_mib),
  ttl_seconds: integer(1, LIMITS.max_ttl_seconds),
  created_at: z.string(),
  expires_at: z.string().describe("When the workspace stops if it stays idle."),
  last_activity_at: z.string(),
  network_policy: NetworkPolicy,
  allowed_domains: z.array(z.string()),
  network_status: NetworkStatus.nullable().describe(
    "The live network (addresses, published ports, refusal counts): filled by status while the workspace runs with a policy other than off.",
  ),
  workspace_seed: z.object({
    mode: z.enum(["empty", "directory", "tar_archive"]),
    seed_path: z.string().nullable(),
  }),
  secrets: z.array(z.object({ name: z.string(), source: z.enum(["value", "file"]) })),
  command_count: count(),
  last_command: z
    .object({
      sequence: count(),
      command: z.array(z.string()),
      exit_code: exitCode(),
      finished_at: z.string(),
    })
    .nullable(),
  reset_count: count(),
  last_reset_at: z.string().nullable(),
  service_count: count(),
  running_service_count: count(),
  execution_mode: ExecutionMode,
  acceleration: AccelerationMode.nullable(),
  error: z.string().nullable().describe("Why the workspace failed, when state is failed."),
  resume_note: z
    .string()
    .nullable()
    .optional()
    .describe(
      "Set when the last resume could not restore the saved VM and booted its disk instead (running processes and shells were lost), saying why.",
    ),
  forked_from: z
    .string()
    .nullable()
    .optional()
    .describe("The workspace this one was forked from, if any."),
  ...bootRecordFields(),
});

export const ExecWorkspaceParams = z.object({
  workspace_id: workspaceId,
  command,
  timeout_seconds: timeoutSeconds,
  cwd: workspacePath.default("/workspace").describe("Working directory, under /workspace."),
  secret_env: z
    .record(z.string(), z.string())
    .default({})
    .describe("Environment variables to fill from secrets: {ENV_VAR: SECRET_NAME}."),
});

export const ExecWorkspaceResult = RunResult.omit({
  vm_id: true,
  environment: true,
  timings: true,
  acceleration: true,
  boot_mode: true,
  cold_reason: true,
}).extend({
  workspace_id: z.string(),
  sequence: count().describe("This command's number in the workspace's journal."),
  cwd: z.string(),
});

export const JournalEntry = z.object({
  sequence: count(),
  command: z.array(z.string()),
  cwd: z.string(),
  exit_code: exitCode(),
  timed_out: z.boolean(),
  started_at: z.string(),
  duration_ms: z.number(),
  stdout_tail: z.string(),
  stderr_tail: z.string(),
});

export const FileEntry = z.object({
  path: z.string(),
  artifact_type: z.enum(["file", "directory", "symlink"]),
  size_bytes: count(),
  link_target: z.string().nullable(),
});

export const ChangeSummary = z.object({
  total: count(),
  added: count(),
  modified: count(),
  deleted: count(),
});

export const DiffResult = z.object({
  workspace_id: z.string(),
  changed: z.boolean(),
  summary: ChangeSummary.extend({ type_changed: count() }),
  entries: z.array(
    z.object({
      path: z.string(),
      status: z.enum(["added", "modified", "deleted", "type_changed"]),
      artifact_type: z.enum(["file", "directory", "symlink"]),
      binary: z.boolean().optional(),
      text_patch: z.string().optional(),
    }),
  ),
  patch: z.string().describe("One unified diff that `patch -p1` applies to the baseline."),
});

export const SnapshotInfo = z.object({
  snapshot_name: z.string(),
  kind: z.enum(["baseline", "named"]),
  created_at: z.string(),
  size_bytes: count(),
});

const op = defineOperation;
const WORKSPACE_ERRORS = [
  "invalid_argument",
  "not_found",
  "conflict",
  "unavailable",
  "guest_error",
  "internal",
] as const;

export const createWorkspace = op({
  sdkMethod: "createWorkspace",
  mcpTool: "workspace_create",
  cliCommand: "workspace create",
  annotations: changes("Create a workspace", {
    destructive: false,
    idempotent: false,
    openWorld: true,
  }),
  description:
    "Create and start a persistent workspace VM whose /workspace survives across calls, optionally seeded from a host directory or archive. Use it when a task needs more than one command.",
  params: CreateWorkspaceParams,
  result: WorkspaceRecord,
  errors: WORKSPACE_ERRORS,
  coreOmits: ["secrets", "network_policy", "allowed_domains"],
});

export const listWorkspaces = op({
  sdkMethod: "listWorkspaces",
  mcpTool: "workspace_list",
  cliCommand: "workspace list",
  annotations: readOnly("List workspaces"),
  description: "List workspaces with their state, names and labels.",
  params: z.object({}),
  result: z.object({ workspaces: z.array(WorkspaceRecord) }),
  errors: ["internal"],
});

export const statusWorkspace = op({
  sdkMethod: "statusWorkspace",
  mcpTool: "workspace_status",
  cliCommand: "workspace status",
  annotations: readOnly("Workspace status"),
  description: "Show one workspace's state (checked against its VM), activity and expiry.",
  params: WorkspaceIdParams,
  result: WorkspaceRecord,
  errors: ["not_found", "internal"],
});

export const updateWorkspace = op({
  sdkMethod: "updateWorkspace",
  mcpTool: "workspace_update",
  cliCommand: "workspace update",
  annotations: changes("Rename or relabel a workspace", {
    destructive: false,
    idempotent: true,
    openWorld: false,
  }),
  description: "Rename a workspace or set and clear its labels.",
  params: z.object({
    workspace_id: workspaceId,
    name: z.string().max(128).optional().describe("New name."),
    labels: labels.default({}).describe("Labels to set (others are kept)."),
    clear_labels: z.array(z.string()).default([]).describe("Label keys to remove."),
  }),
  result: WorkspaceRecord,
  errors: ["invalid_argument", "not_found", "internal"],
});

export const logsWorkspace = op({
  sdkMethod: "logsWorkspace",
  mcpTool: "workspace_logs",
  cliCommand: "workspace logs",
  annotations: readOnly("Workspace command journal"),
  description:
    "Show the workspace's command journal (each exec with its exit code and output tail) and the network refusals.",
  params: z.object({
    workspace_id: workspaceId,
    limit: z.number().int().min(1).max(1000).default(50).describe("Most recent entries to return."),
  }),
  result: z.object({
    network_refusals: z
      .array(z.string())
      .describe(
        "Newest lines of the network guard's refusal log (one per reason and destination per second at most); empty without a network.",
      ),
    workspace_id: z.string(),
    entries: z.array(JournalEntry),
    total: count(),
  }),
  errors: ["not_found", "internal"],
});

export const deleteWorkspace = op({
  sdkMethod: "deleteWorkspace",
  mcpTool: "workspace_delete",
  cliCommand: "workspace delete",
  annotations: changes("Delete a workspace", {
    destructive: true,
    idempotent: true,
    openWorld: false,
  }),
  description: "Delete a workspace, its VM, files and snapshots. This cannot be undone.",
  params: WorkspaceIdParams,
  result: z.object({ workspace_id: z.string(), deleted: z.literal(true) }),
  errors: ["not_found", "internal"],
});

export const stopWorkspace = op({
  sdkMethod: "stopWorkspace",
  mcpTool: "workspace_stop",
  cliCommand: "workspace stop",
  annotations: changes("Stop a workspace", {
    destructive: true,
    idempotent: true,
    openWorld: false,
  }),
  description: "Power a workspace's VM off, keeping its files for workspace_start.",
  params: WorkspaceIdParams,
  result: WorkspaceRecord,
  errors: ["not_found", "conflict", "internal"],
});

export const startWorkspace = op({
  sdkMethod: "startWorkspace",
  mcpTool: "workspace_start",
  cliCommand: "workspace start",
  annotations: changes("Start a workspace", {
    destructive: false,
    idempotent: true,
    openWorld: true,
  }),
  description:
    "Boot a stopped or failed workspace again with its files in place; a paused one is resumed.",
  params: StartWorkspaceParams,
  result: WorkspaceRecord,
  errors: ["not_found", "conflict", "unavailable", "internal"],
});

export const execWorkspace = op({
  sdkMethod: "execWorkspace",
  mcpTool: "workspace_exec",
  cliCommand: "workspace exec",
  annotations: changes("Run a command in a workspace", {
    destructive: true,
    idempotent: false,
    openWorld: true,
  }),
  description:
    "Run one command in a started workspace (default cwd /workspace) and return its exit code and output.",
  params: ExecWorkspaceParams,
  result: ExecWorkspaceResult,
  errors: WORKSPACE_ERRORS,
});

export const pushWorkspaceSync = op({
  sdkMethod: "pushWorkspaceSync",
  mcpTool: "workspace_sync_push",
  cliCommand: "workspace sync push",
  annotations: changes("Copy host files into a workspace", {
    destructive: true,
    idempotent: true,
    openWorld: false,
  }),
  description:
    "Copy a host directory or archive into a started workspace, under dest (default /workspace).",
  params: z.object({
    workspace_id: workspaceId,
    source_path: z.string().describe("Host directory or .tar/.tar.gz/.tgz archive."),
    dest: workspacePath.default("/workspace").describe("Where to put it, under /workspace."),
  }),
  result: z.object({
    workspace_id: z.string(),
    source_path: z.string(),
    dest: z.string(),
    mode: z.enum(["directory", "tar_archive"]),
    entries: count(),
    bytes: count(),
  }),
  errors: WORKSPACE_ERRORS,
});

export const exportWorkspace = op({
  sdkMethod: "exportWorkspace",
  mcpTool: "workspace_export",
  cliCommand: "workspace export",
  annotations: changes("Copy workspace files to the host", {
    destructive: true,
    idempotent: true,
    openWorld: false,
  }),
  description: "Copy a file or directory from /workspace to a host path.",
  params: z.object({
    workspace_id: workspaceId,
    path: workspacePath,
    output_path: z
      .string()
      .describe("Host path to create; it must not exist unless overwrite is set."),
    overwrite: z.boolean().default(false).describe("Replace output_path if it exists."),
  }),
  result: z.object({
    workspace_id: z.string(),
    path: z.string(),
    output_path: z.string(),
    artifact_type: z.enum(["file", "directory"]),
    entries: count(),
    bytes: count(),
  }),
  errors: WORKSPACE_ERRORS,
});

export const diffWorkspace = op({
  sdkMethod: "diffWorkspace",
  mcpTool: "workspace_diff",
  cliCommand: "workspace diff",
  annotations: readOnly("Diff a workspace against its baseline"),
  description:
    "Compare /workspace with its creation-time baseline: a summary plus one unified patch.",
  params: WorkspaceIdParams,
  result: DiffResult,
  errors: WORKSPACE_ERRORS,
});

export const resetWorkspace = op({
  sdkMethod: "resetWorkspace",
  mcpTool: "workspace_reset",
  cliCommand: "workspace reset",
  annotations: changes("Reset a workspace", {
    destructive: true,
    idempotent: true,
    openWorld: true,
  }),
  description:
    "Recreate the workspace from its baseline or a named snapshot, discarding everything since. Use it to recover from a bad edit.",
  params: z.object({
    workspace_id: workspaceId,
    snapshot: z.string().default("baseline").describe('"baseline" or the name of a snapshot.'),
  }),
  result: WorkspaceRecord,
  errors: WORKSPACE_ERRORS,
});

export const listWorkspaceFiles = op({
  sdkMethod: "listWorkspaceFiles",
  mcpTool: "workspace_file_list",
  cliCommand: "workspace file list",
  annotations: readOnly("List workspace files"),
  description:
    "List files under a /workspace path (optionally recursively); symlinks are shown with their target.",
  params: z.object({
    workspace_id: workspaceId,
    path: workspacePath.default("/workspace"),
    recursive: z.boolean().default(false).describe("Walk subdirectories too."),
  }),
  result: z.object({
    path: z.string(),
    recursive: z.boolean(),
    entries: z.array(FileEntry),
    truncated: z.boolean(),
  }),
  errors: WORKSPACE_ERRORS,
});

export const readWorkspaceFile = op({
  sdkMethod: "readWorkspaceFile",
  mcpTool: "workspace_file_read",
  cliCommand: "workspace file read",
  annotations: readOnly("Read a workspace file"),
  description: "Read a UTF-8 text file from /workspace, up to max_bytes.",
  params: z.object({
    workspace_id: workspaceId,
    path: workspacePath,
    max_bytes: readMaxBytes,
  }),
  result: z.object({
    path: z.string(),
    size_bytes: count(),
    content: z.string(),
    truncated: z.boolean(),
  }),
  errors: WORKSPACE_ERRORS,
});

export const writeWorkspaceFile = op({
  sdkMethod: "writeWorkspaceFile",
  mcpTool: "workspace_file_write",
  cliCommand: "workspace file write",
  annotations: changes("Write a workspace file", {
    destructive: true,
    idempotent: true,
    openWorld: false,
  }),
  description:
    "Write a UTF-8 text file (at most 1 MiB) in /workspace, creating parent directories. Use it instead of shell quoting tricks.",
  params: z.object({
    workspace_id: workspaceId,
    path: workspacePath,
    text: z.string().describe("The whole new content."),
  }),
  result: z.object({ path: z.string(), bytes_written: count() }),
  errors: WORKSPACE_ERRORS,
});

export const applyWorkspacePatch = op({
  sdkMethod: "applyWorkspacePatch",
  mcpTool: "workspace_patch_apply",
  cliCommand: "workspace patch apply",
  annotations: changes("Apply a patch to a workspace", {
    destructive: true,
    idempotent: false,
    openWorld: false,
  }),
  description:
    "Apply a unified diff (modify, add, delete; many files and hunks) to /workspace. Every hunk is checked first; a patch that does not apply exactly changes nothing.",
  params: z.object({ workspace_id: workspaceId, patch: z.string().describe("Unified diff text.") }),
  result: z.object({
    changed: z.boolean(),
    summary: ChangeSummary,
    entries: z.array(
      z.object({ path: z.string(), status: z.enum(["added", "modified", "deleted"]) }),
    ),
  }),
  errors: WORKSPACE_ERRORS,
});

export const createSnapshot = op({
  sdkMethod: "createSnapshot",
  mcpTool: "snapshot_create",
  cliCommand: "workspace snapshot create",
  annotations: changes("Snapshot a workspace", {
    destructive: false,
    idempotent: true,
    openWorld: false,
  }),
  description: "Save the current /workspace under a name, to reset to later.",
  params: z.object({ workspace_id: workspaceId, snapshot_name: snapshotName }),
  result: SnapshotInfo.extend({ workspace_id: z.string() }),
  errors: WORKSPACE_ERRORS,
});

export const listSnapshots = op({
  sdkMethod: "listSnapshots",
  mcpTool: "snapshot_list",
  cliCommand: "workspace snapshot list",
  annotations: readOnly("List snapshots"),
  description: "List a workspace's snapshots, the baseline first.",
  params: WorkspaceIdParams,
  result: z.object({ workspace_id: z.string(), snapshots: z.array(SnapshotInfo) }),
  errors: ["not_found", "internal"],
});

export const deleteSnapshot = op({
  sdkMethod: "deleteSnapshot",
  mcpTool: "snapshot_delete",
  cliCommand: "workspace snapshot delete",
  annotations: changes("Delete a snapshot", {
    destructive: true,
    idempotent: true,
    openWorld: false,
  }),
  description: "Delete a named snapshot (the baseline cannot be deleted).",
  params: z.object({ workspace_id: workspaceId, snapshot_name: snapshotName }),
  result: z.object({
    workspace_id: z.string(),
    snapshot_name: z.string(),
    deleted: z.literal(true),
  }),
  errors: ["invalid_argument", "not_found", "internal"],
});

export const pauseWorkspace = op({
  sdkMethod: "pauseWorkspace",
  mcpTool: "workspace_pause",
  cliCommand: "workspace pause",
  annotations: changes("Pause a workspace", {
    destructive: false,
    idempotent: true,
    openWorld: false,
  }),
  description:
    "Save a started workspace's whole VM (memory, running services, open shells) on the host and free its CPU; workspace_resume, or any call that needs the guest, brings it back as it was.",
  params: WorkspaceIdParams,
  result: WorkspaceRecord.extend({
    pause_ms: z.number().describe("How long the pause took, request to VM saved and gone."),
  }),
  errors: ["not_found", "conflict", "unavailable", "internal"],
});

export const resumeWorkspace = op({
  sdkMethod: "resumeWorkspace",
  mcpTool: "workspace_resume",
  cliCommand: "workspace resume",
  annotations: changes("Resume a paused workspace", {
    destructive: false,
    idempotent: true,
    openWorld: true,
  }),
  description:
    "Resume a paused workspace with its processes, services and shells as they were; a started one is left as it is.",
  params: WorkspaceIdParams,
  result: WorkspaceRecord.extend({
    resume_ms: z.number().describe("How long the resume took, until the guest answered."),
    resumed_from: z
      .enum(["memory", "disk", "running"])
      .describe(
        "memory: the saved VM was restored; disk: it could not be (see resume_note) and the disk was booted; running: it was not paused.",
      ),
  }),
  errors: ["not_found", "conflict", "unavailable", "guest_error", "internal"],
});

export const forkWorkspace = op({
  sdkMethod: "forkWorkspace",
  mcpTool: "workspace_fork",
  cliCommand: "workspace fork",
  annotations: changes("Fork a workspace", {
    destructive: false,
    idempotent: false,
    openWorld: true,
  }),
  description:
    "Make a new started workspace from a running one's memory and disk: its files, processes, services and shells, diverging from then on. Published ports are not carried over.",
  params: z.object({
    workspace_id: workspaceId,
    name: z.string().max(128).optional().describe("A name for the new workspace."),
  }),
  result: WorkspaceRecord.extend({
    fork_ms: z.number().describe("How long the fork took, until the new workspace answered."),
    parent_stopped_ms: z.number().describe("How long the parent's guest was stopped for the copy."),
  }),
  errors: WORKSPACE_ERRORS,
});
