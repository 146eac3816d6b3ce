import type { z } from "zod";
import type * as env from "../contract/environment.js";
import { EnvironmentParams } from "../contract/environment.js";
import { parseParams } from "../contract/validate.js";
import type * as vm from "../contract/vm.js";
import { runDoctor, type DoctorReport } from "../manager/doctor.js";
import {
  inspectEnvironment,
  listEnvironments,
  pruneEnvironments,
  pullEnvironment,
} from "../manager/environments.js";
import { VmManager, type ManagerOptions, type RunOptions } from "../manager/vms.js";
import { silentProgress, type ProgressSink } from "../util/progress.js";

type In<T extends z.ZodType> = z.input<T>;
type Out<T extends z.ZodType> = z.output<T>;

export interface PyroOptions {
  /** Receives progress of long work (kernel and environment builds, boots). */
  progress?: ProgressSink;
  /** Bound on a guest's boot, VMM start to agent answer. @default 60000 */
  bootTimeoutMs?: number;
}

/** Streams a command's output as it arrives, in addition to the returned result. */
export type OutputHandlers = RunOptions;

/**
 * The pyro runtime as a library; the CLI and the MCP server are thin layers over it.
 * Options and results use the contract's snake_case field names. Every method validates
 * its options and throws `PyroError` with a stable `code`: `invalid_argument` (names the
 * field), `not_found`, `conflict` (wrong state; says what to run), `unavailable`,
 * `guest_error`, `internal`. A command that fails is a result (`exit_code`), not an error.
 */
export class Pyro {
  private readonly progress: ProgressSink;
  private readonly vms: VmManager;

  constructor(options: PyroOptions = {}) {
    this.progress = options.progress ?? silentProgress;
    const manager: ManagerOptions = { progress: this.progress };
    if (options.bootTimeoutMs !== undefined) manager.bootTimeoutMs = options.bootTimeoutMs;
    this.vms = new VmManager(manager);
  }

  /**
   * Boots a fresh microVM, runs one command in it and deletes the VM on every path.
   * Defaults: `vcpu_count` 1, `mem_mib` 1024, `timeout_seconds` 30, `ttl_seconds` 600.
   * A timeout gives `timed_out: true` and `exit_code` 124.
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
  startVm(options: In<typeof vm.VmIdParams>): Promise<Out<typeof vm.VmRecord>> {
    return this.vms.start(options);
  }

  /** Runs one command in a started VM, then deletes the VM. @default timeout_seconds 30 */
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
  async listEnvironments(
    _options: Record<string, never> = {},
  ): Promise<Out<typeof env.listEnvironments.result>> {
    return { environments: await listEnvironments() };
  }

  /**
   * Builds an environment (and the guest kernel and agent) unless it is cached and its
   * digest checks out; a partial or corrupt cache entry is rebuilt.
   */
  pullEnvironment(
    options: In<typeof EnvironmentParams>,
  ): Promise<Out<typeof env.pullEnvironment.result>> {
    const { environment } = parseParams(EnvironmentParams, options);
    return pullEnvironment(environment, this.progress);
  }

  /** An environment's recipe and, once built, its manifest (packages, digest, versions). */
  inspectEnvironment(
    options: In<typeof EnvironmentParams>,
  ): Promise<Out<typeof env.inspectEnvironment.result>> {
    const { environment } = parseParams(EnvironmentParams, options);
    return inspectEnvironment(environment);
  }

  /** Removes cache entries that no current environment, kernel or agent uses. */
  pruneEnvironments(
    _options: Record<string, never> = {},
  ): Promise<Out<typeof env.pruneEnvironments.result>> {
    return pruneEnvironments();
  }

  /** Checks the host: KVM and acceleration, QEMU, build tools and the artifact cache. */
  doctor(): Promise<DoctorReport> {
    return runDoctor();
  }
}
