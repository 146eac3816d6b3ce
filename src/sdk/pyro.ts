import type { z } from "zod";
import type * as env from "../contract/environment.js";
import type { EnvironmentParams } from "../contract/environment.js";
import type * as vm from "../contract/vm.js";
import type { DoctorReport } from "../manager/doctor.js";
import type { HostPathRoots } from "../manager/host-paths.js";
import type { VmManager } from "../manager/vms.js";
import type { ShellManager } from "../manager/shells.js";
import type { WorkspaceContent } from "../manager/workspace-content.js";
import type { WorkspaceDisk } from "../manager/workspace-disk.js";
import type { WorkspaceManager } from "../manager/workspaces.js";
import type { ServiceManager } from "../manager/services.js";
import type * as ws from "../contract/workspace.js";
import type * as disk from "../contract/disk.js";
import type * as svc from "../contract/services.js";
import type * as shell from "../contract/shells.js";
import { deferred, once, type Deferred } from "../util/lazy.js";
import { silentProgress, type ProgressSink } from "../util/progress.js";
import type { Core } from "./core.js";

type In<T extends z.ZodType> = z.input<T>;
type Out<T extends z.ZodType> = z.output<T>;

export interface PyroOptions {
  /** Receives progress of long work (kernel and environment builds, boots). */
  progress?: ProgressSink;
  /** Bound on a guest's boot, VMM start to agent answer. @default 60000 */
  bootTimeoutMs?: number;
  /**
   * Host directories that host paths in params (`seed_path`, secrets' `file_path`,
   * `source_path`, `output_path`) must lie under once `..` and symlinks are resolved;
   * others are refused with `invalid_argument` before any VM work. A function is called
   * only by calls that carry a host path (the MCP server passes one that asks the client
   * for its current roots). @default unrestricted
   */
  hostPathRoots?: HostPathRoots;
}

function pickDefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * A running command's live output, in addition to the result it returns, and its
 * cancellation (`runInVm`, `execVm`, `execWorkspace`).
 */
export interface OutputHandlers {
  /**
   * Aborting kills the command's whole process group; the call still resolves, with the
   * output so far and the kill's status (137).
   */
  signal?: AbortSignal;
  /**
   * Each piece of stdout as the guest writes it, before the command ends: raw bytes (a
   * UTF-8 character or a line can be split across chunks), redacted and bounded like the
   * result's `stdout` (1 MiB per stream). A callback that throws fails the call.
   */
  onStdout?: (chunk: Buffer) => void;
  /** Like `onStdout`, for stderr. */
  onStderr?: (chunk: Buffer) => void;
}

/**
 * The pyro runtime as a library; the CLI and the MCP server are thin layers over it.
 * Options and results use the contract's snake_case field names. Every method validates
 * its options and throws `PyroError` with a stable `code`: `invalid_argument` (names the
 * field), `not_found`, `conflict` (wrong state; says what to run), `unavailable`,
 * `guest_error`, `internal`. A command that fails is a result (`exit_code`), not an error.
 */
export class Pyro {
  private readonly progress: ProgressSink;
  private readonly vms: Deferred<VmManager>;
  private readonly workspaces: Deferred<WorkspaceManager>;
  private readonly content: Deferred<WorkspaceContent>;
  private readonly disk: Deferred<WorkspaceDisk>;
  private readonly services: Deferred<ServiceManager>;
  private readonly shells: Deferred<ShellManager>;
  private readonly host: Deferred<Core["host"]>;
  private readonly hostPathRoots: HostPathRoots | undefined;

  constructor(options: PyroOptions = {}) {
    this.progress = options.progress ?? silentProgress;
    const roots = options.hostPathRoots;
    this.hostPathRoots = typeof roots === "function" ? roots : roots && [...roots];
    // The managers, and zod and the VMM drivers under them, load on the first call rather
    // than at import: importing the SDK and `new Pyro()` stay cheap (util/lazy.ts).
    // `pyro run` needs only the VM core; the workspace side loads on its first call.
    const vmCore = once(async () =>
      (await import("./vm-core.js")).createVmCore({
        progress: this.progress,
        ...pickDefined({ bootTimeoutMs: options.bootTimeoutMs }),
      }),
    );
    const core = once(async () =>
      (await import("./core.js")).createCore(await vmCore(), this.progress),
    );
    this.vms = deferred(async () => (await vmCore()).vms);
    this.workspaces = deferred(async () => (await core()).workspaces);
    this.content = deferred(async () => (await core()).content);
    this.disk = deferred(async () => (await core()).disk);
    this.services = deferred(async () => (await core()).services);
    this.shells = deferred(async () => (await core()).shells);
    this.host = deferred(async () => (await core()).host);
  }

  /**
   * Boots a fresh microVM, runs one command in it and deletes the VM on every path.
   * Defaults: `vcpu_count` 1, `mem_mib` 1024, `timeout_seconds` 30, `ttl_seconds` 600.
   * A timeout gives `timed_out: true` and `exit_code` 124. `output` streams the command's
   * stdout and stderr while it runs and can cancel it ({@link OutputHandlers}).
   */
  runInVm(
    options: In<typeof vm.RunParams>,
    output: OutputHandlers = {},
  ): Promise<Out<typeof vm.RunResult>> {
    return this.vms.run(options, output);
  }

  /** Records a VM (state `created`) without booting it; builds its environment if needed. */
  createVm(options: In<typeof vm.CreateVmParams>): Promise<Out<typeof vm.VmRecord>> {
    return this.vms.create(options);
  }

  /** Boots a created or stopped VM and waits for its agent. @throws conflict if started */
  startVm(options: In<typeof vm.StartVmParams>): Promise<Out<typeof vm.VmRecord>> {
    return this.vms.start(options);
  }

  /**
   * Runs one command in a started VM, then deletes the VM; `output` as for `runInVm`.
   * @default timeout_seconds 30
   */
  execVm(
    options: In<typeof vm.ExecVmParams>,
    output: OutputHandlers = {},
  ): Promise<Out<typeof vm.ExecVmResult>> {
    return this.vms.exec(options, output);
  }

  /** Powers a started VM off, keeping its disk for a later `startVm`. */
  stopVm(options: In<typeof vm.VmIdParams>): Promise<Out<typeof vm.VmRecord>> {
    return this.vms.stop(options);
  }

  /** Deletes a VM in any state, powering it off first. */
  deleteVm(options: In<typeof vm.VmIdParams>): Promise<{ vm_id: string; deleted: true }> {
    return this.vms.delete(options);
  }

  /** A VM's record, reconciled with its processes (a dead supervisor shows as `failed`). */
  statusVm(options: In<typeof vm.VmIdParams>): Promise<Out<typeof vm.VmRecord>> {
    return this.vms.status(options);
  }

  /** The VM's network: none unless created with `network: true`. */
  networkInfoVm(options: In<typeof vm.VmIdParams>): Promise<Out<typeof vm.NetworkInfo>> {
    return this.vms.networkInfo(options);
  }

  /** Deletes VMs past their TTL and VMs whose supervisor died; lists what it removed. */
  reapExpired(_options: Record<string, never> = {}): Promise<Out<typeof vm.ReapResult>> {
    return this.vms.reapExpired();
  }

  /** The known environments and whether each is built on this host. */
  listEnvironments(
    _options: Record<string, never> = {},
  ): Promise<Out<typeof env.listEnvironments.result>> {
    return this.host.listEnvironments();
  }

  /**
   * Builds an environment (and the guest kernel and agent) unless it is cached and its
   * digest checks out; a partial or corrupt cache entry is rebuilt.
   */
  pullEnvironment(
    options: In<typeof EnvironmentParams>,
  ): Promise<Out<typeof env.pullEnvironment.result>> {
    return this.host.pullEnvironment(options);
  }

  /** An environment's recipe and, once built, its manifest (packages, digest, versions). */
  inspectEnvironment(
    options: In<typeof EnvironmentParams>,
  ): Promise<Out<typeof env.inspectEnvironment.result>> {
    return this.host.inspectEnvironment(options);
  }

  /** Removes cache entries that no current environment, kernel or agent uses. */
  pruneEnvironments(
    _options: Record<string, never> = {},
  ): Promise<Out<typeof env.pruneEnvironments.result>> {
    return this.host.pruneEnvironments();
  }

  // ---- workspaces: one long-lived VM whose /workspace persists across calls ----

  /**
   * Creates and starts a workspace, optionally seeded from a host directory or a
   * `.tar`/`.tar.gz`/`.tgz` archive (captured as the immutable baseline).
   * Defaults: `vcpu_count` 1, `mem_mib` 1024, `ttl_seconds` 600 (idle time before it is
   * paused, or stopped where its VMM cannot save a VM; never deleted), `network_policy` "off".
   */
  createWorkspace(
    options: In<typeof ws.CreateWorkspaceParams>,
  ): Promise<Out<typeof ws.WorkspaceRecord>> {
    return this.withHostPaths("createWorkspace", options, (o) => this.workspaces.create(o));
  }

  /** Every workspace with its reconciled state. */
  listWorkspaces(
    _options: Record<string, never> = {},
  ): Promise<Out<typeof ws.listWorkspaces.result>> {
    return this.workspaces.list();
  }

  /** One workspace's record, reconciled with its VM (a crashed VM shows as `failed`). */
  statusWorkspace(
    options: In<typeof ws.WorkspaceIdParams>,
  ): Promise<Out<typeof ws.WorkspaceRecord>> {
    return this.workspaces.status(options);
  }

  /** Renames a workspace, sets labels (`labels`) and removes them (`clear_labels`). */
  updateWorkspace(
    options: In<typeof ws.updateWorkspace.params>,
  ): Promise<Out<typeof ws.WorkspaceRecord>> {
    return this.workspaces.update(options);
  }

  /** The command journal, newest last. @default limit 50 */
  logsWorkspace(
    options: In<typeof ws.logsWorkspace.params>,
  ): Promise<Out<typeof ws.logsWorkspace.result>> {
    return this.workspaces.logs(options);
  }

  /** Deletes the workspace with its VM, disk and snapshots. */
  deleteWorkspace(
    options: In<typeof ws.WorkspaceIdParams>,
  ): Promise<{ workspace_id: string; deleted: true }> {
    return this.workspaces.delete(options);
  }

  /**
   * Syncs and powers the VM off; files stay for `startWorkspace`. A paused workspace stops
   * too: its saved VM is discarded.
   */
  stopWorkspace(options: In<typeof ws.WorkspaceIdParams>): Promise<Out<typeof ws.WorkspaceRecord>> {
    return this.workspaces.stop(options);
  }

  /**
   * Boots a stopped or failed workspace with its files in place (`cold`: even when a memory
   * template fits); resumes a paused one.
   */
  startWorkspace(
    options: In<typeof ws.StartWorkspaceParams>,
  ): Promise<Out<typeof ws.WorkspaceRecord>> {
    return this.workspaces.start(options);
  }

  /**
   * Saves a started workspace's whole VM (memory, processes, services, shells) on the host
   * and ends its processes there; the pause survives every host process. Any later call
   * that needs the guest resumes it first. Idempotent on a paused workspace.
   * @throws conflict when it is not started, or requests keep running in it for 10 s
   * @throws unavailable when its VMM cannot save a VM (only QEMU can)
   */
  pauseWorkspace(
    options: In<typeof ws.WorkspaceIdParams>,
  ): Promise<Out<typeof ws.pauseWorkspace.result>> {
    return this.workspaces.pause(options);
  }

  /**
   * Resumes a paused workspace as it was. When the host can no longer restore the saved
   * VM (another QEMU, kernel, agent or image, or a damaged save) its disk is booted instead
   * and `resume_note` says why; `resumed_from` tells which happened. A started workspace
   * is left as it is.
   * @throws conflict when it is stopped or failed (start it instead)
   */
  resumeWorkspace(
    options: In<typeof ws.WorkspaceIdParams>,
  ): Promise<Out<typeof ws.resumeWorkspace.result>> {
    return this.workspaces.resume(options);
  }

  /**
   * Makes a new started workspace from a running one's memory and disk: files, processes,
   * services and shells, diverging from then on; its baseline is the parent's. The
   * parent's guest is stopped for the copy (`parent_stopped_ms`) and then runs on.
   * Published ports are not carried over. A paused parent is resumed first.
   */
  forkWorkspace(
    options: In<typeof ws.forkWorkspace.params>,
  ): Promise<Out<typeof ws.forkWorkspace.result>> {
    return this.workspaces.fork(options);
  }

  /**
   * Runs one command (default cwd /workspace, `timeout_seconds` 30); journaled with a
   * sequence number. `output` as for `runInVm`; its chunks are redacted of the workspace's
   * secrets, like the result.
   */
  execWorkspace(
    options: In<typeof ws.ExecWorkspaceParams>,
    output: OutputHandlers = {},
  ): Promise<Out<typeof ws.ExecWorkspaceResult>> {
    return this.workspaces.exec(options, output);
  }

  /** Copies a host directory or archive into /workspace (under `dest`). */
  pushWorkspaceSync(
    options: In<typeof ws.pushWorkspaceSync.params>,
  ): Promise<Out<typeof ws.pushWorkspaceSync.result>> {
    return this.withHostPaths("pushWorkspaceSync", options, (o) => this.content.syncPush(o));
  }

  /** Copies a /workspace file or directory to a new host path (`overwrite` to replace). */
  exportWorkspace(
    options: In<typeof ws.exportWorkspace.params>,
  ): Promise<Out<typeof ws.exportWorkspace.result>> {
    return this.withHostPaths("exportWorkspace", options, (o) => this.content.export(o));
  }

  /** Compares /workspace with its baseline: summary, entries and one unified patch. */
  diffWorkspace(options: In<typeof ws.WorkspaceIdParams>): Promise<Out<typeof ws.DiffResult>> {
    return this.content.diff(options);
  }

  /** Recreates the workspace from the baseline or a named snapshot. @default snapshot "baseline" */
  resetWorkspace(
    options: In<typeof ws.resetWorkspace.params>,
  ): Promise<Out<typeof ws.WorkspaceRecord>> {
    return this.content.reset(options);
  }

  /** Lists a /workspace path; symlinks carry their target. @default path "/workspace" */
  listWorkspaceFiles(
    options: In<typeof ws.listWorkspaceFiles.params>,
  ): Promise<Out<typeof ws.listWorkspaceFiles.result>> {
    return this.content.listFiles(options);
  }

  /** Reads a UTF-8 text file. @default max_bytes 65536 */
  readWorkspaceFile(
    options: In<typeof ws.readWorkspaceFile.params>,
  ): Promise<Out<typeof ws.readWorkspaceFile.result>> {
    return this.content.readFile(options);
  }

  /** Writes a UTF-8 text file of at most 1 MiB, creating parent directories. */
  writeWorkspaceFile(
    options: In<typeof ws.writeWorkspaceFile.params>,
  ): Promise<Out<typeof ws.writeWorkspaceFile.result>> {
    return this.content.writeFile(options);
  }

  /** Applies a unified diff; every hunk is checked first and a failing patch changes nothing. */
  applyWorkspacePatch(
    options: In<typeof ws.applyWorkspacePatch.params>,
  ): Promise<Out<typeof ws.applyWorkspacePatch.result>> {
    return this.content.applyPatch(options);
  }

  // ---- disk tools: a stopped workspace's whole root file system, read offline ----

  /**
   * Lists a path (default "/") of a stopped workspace's root file system: the
   * environment's image with the workspace's changes on top, read from its disk without
   * booting. At most 10000 entries (`truncated` says more exist); links are not followed.
   * @throws conflict when the workspace is started (stop it first)
   */
  listWorkspaceDisk(
    options: In<typeof disk.listWorkspaceDisk.params>,
  ): Promise<Out<typeof disk.listWorkspaceDisk.result>> {
    return this.disk.list(options);
  }

  /**
   * Reads up to `max_bytes` (default 65536) of a file of a stopped workspace's root file
   * system; `encoding` says whether `content` is UTF-8 text or base64.
   * @throws conflict when the workspace is started (stop it first)
   */
  readWorkspaceDisk(
    options: In<typeof disk.readWorkspaceDisk.params>,
  ): Promise<Out<typeof disk.readWorkspaceDisk.result>> {
    return this.disk.read(options);
  }

  /**
   * Writes a stopped workspace's root file system as a raw ext4 image that mounts on its
   * own (`overwrite` to replace an existing file). Runtime-only paths (/run/pyro-*) and
   * sockets are left out, and device nodes and fifos unless pyro runs as root.
   * @throws conflict when the workspace is started (stop it first)
   */
  exportWorkspaceDisk(
    options: In<typeof disk.exportWorkspaceDisk.params>,
  ): Promise<Out<typeof disk.exportWorkspaceDisk.result>> {
    return this.withHostPaths("exportWorkspaceDisk", options, (o) => this.disk.export(o));
  }

  /** Saves /workspace under a name (`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`). */
  createSnapshot(
    options: In<typeof ws.createSnapshot.params>,
  ): Promise<Out<typeof ws.createSnapshot.result>> {
    return this.content.createSnapshot(options);
  }

  /** The baseline and the named snapshots. */
  listSnapshots(
    options: In<typeof ws.WorkspaceIdParams>,
  ): Promise<Out<typeof ws.listSnapshots.result>> {
    return this.content.listSnapshots(options);
  }

  /** Deletes a named snapshot; the baseline cannot be deleted. */
  deleteSnapshot(
    options: In<typeof ws.deleteSnapshot.params>,
  ): Promise<Out<typeof ws.deleteSnapshot.result>> {
    return this.content.deleteSnapshot(options);
  }

  // ---- services: named long-running processes in a workspace ----

  /**
   * Starts a named process in a started workspace (cwd under /workspace, default
   * /workspace) and waits for its `readiness` (file, tcp, http or command), checked every
   * `ready_interval_ms` (default 500) for up to `ready_timeout_seconds` (default 30). A
   * service that does not become ready is stopped and the error quotes its log tail.
   * Services outlive the caller but do not keep the workspace from its idle TTL.
   * @throws conflict when a service of that name is running
   */
  startService(options: In<typeof svc.StartServiceParams>): Promise<Out<typeof svc.ServiceRecord>> {
    return this.services.start(options);
  }

  /** The workspace's services, checked against the guest (crashes show as `exited`). */
  listServices(
    options: In<typeof ws.WorkspaceIdParams>,
  ): Promise<Out<typeof svc.listServices.result>> {
    return this.services.list(options);
  }

  /** One service's record, checked against the guest. */
  statusService(options: In<typeof svc.ServiceParams>): Promise<Out<typeof svc.ServiceRecord>> {
    return this.services.status(options);
  }

  /** The last `tail_lines` (default 200) lines of the service's stdout and stderr. */
  logsService(
    options: In<typeof svc.logsService.params>,
  ): Promise<Out<typeof svc.logsService.result>> {
    return this.services.logs(options);
  }

  /** TERM to the service's process group, KILL after 5 s; returns its final record. */
  stopService(options: In<typeof svc.ServiceParams>): Promise<Out<typeof svc.ServiceRecord>> {
    return this.services.stop(options);
  }

  // ---- shells: interactive terminals in a started workspace ----

  /**
   * Opens a shell (a PTY running the environment's login shell, TERM=xterm-256color) in a
   * started workspace. It lives until `closeShell`, or until the workspace stops, resets
   * or is deleted; it does not keep an idle workspace alive.
   * Defaults: `cwd` "/workspace", `cols` 120, `rows` 30.
   */
  openShell(options: In<typeof shell.OpenShellParams>): Promise<Out<typeof shell.ShellRecord>> {
    return this.shells.open(options);
  }

  /**
   * Reads output from byte offset `cursor` (pass the previous `next_cursor`); the guest
   * keeps the last 1 MiB, and `truncated` says older output was dropped. `plain` strips
   * escape codes; `wait_for_idle_ms` first waits until the shell is quiet that long.
   * Defaults: `cursor` 0, `max_chars` 65536, `plain` false, `wait_for_idle_ms` 0 (max 30000).
   */
  readShell(options: In<typeof shell.ReadShellParams>): Promise<Out<typeof shell.ReadShellResult>> {
    return this.shells.read(options);
  }

  /** Types `input` (under 32 KiB) into the shell, then Enter. @default append_newline true */
  writeShell(
    options: In<typeof shell.WriteShellParams>,
  ): Promise<Out<typeof shell.writeShell.result>> {
    return this.shells.write(options);
  }

  /** Signals the shell's foreground program (INT is Ctrl-C). @default signal_name "INT" */
  signalShell(
    options: In<typeof shell.SignalShellParams>,
  ): Promise<Out<typeof shell.signalShell.result>> {
    return this.shells.signal(options);
  }

  /** Ends the shell and every program in it. */
  closeShell(
    options: In<typeof shell.ShellIdParams>,
  ): Promise<Out<typeof shell.closeShell.result>> {
    return this.shells.close(options);
  }

  /**
   * Runs `call` with the method's host paths checked against `hostPathRoots` (and replaced
   * by their resolved form, so what was checked is what is used); unchecked without roots.
   */
  private async withHostPaths<T, R>(
    method: string,
    options: T,
    call: (options: T) => Promise<R>,
  ): Promise<R> {
    if (!this.hostPathRoots) return call(options);
    return call(await this.host.confineHostPaths(method, options, this.hostPathRoots));
  }

  /** Checks the host: KVM and acceleration, QEMU, build tools and the artifact cache. */
  doctor(): Promise<DoctorReport> {
    return this.host.doctor();
  }
}
