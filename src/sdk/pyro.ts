import { parseParams } from "../contract/validate.js";
import { EnvironmentParams } from "../contract/environment.js";
import type { RunParamsInput, RunResultValue } from "../contract/vm.js";
import {
  inspectEnvironment,
  listEnvironments,
  pruneEnvironments,
  pullEnvironment,
} from "../manager/environments.js";
import { runDoctor, type DoctorReport } from "../manager/doctor.js";
import { VmManager, type RunOptions } from "../manager/vms.js";
import { silentProgress, type ProgressSink } from "../util/progress.js";

export interface PyroOptions {
  /** Receives progress of long work (kernel and environment builds, boots). */
  progress?: ProgressSink;
}

/**
 * The pyro runtime as a library. The CLI and the MCP server are thin layers over this
 * class. Every method validates its options and throws `PyroError` with a stable `code`.
 */
export class Pyro {
  private readonly progress: ProgressSink;
  private readonly vms: VmManager;

  constructor(options: PyroOptions = {}) {
    this.progress = options.progress ?? silentProgress;
    this.vms = new VmManager({ progress: this.progress });
  }

  /**
   * Boots a fresh microVM, runs one command in it and deletes the VM on every path.
   * Defaults: `vcpu_count` 1, `mem_mib` 1024, `timeout_seconds` 30, `ttl_seconds` 600.
   * A command that fails is a result (`exit_code`), not an exception; a timeout gives
   * `timed_out: true` and `exit_code` 124.
   * @throws PyroError `invalid_argument`, `not_found` (unknown environment), `unavailable`
   */
  runInVm(options: RunParamsInput, streams: RunOptions = {}): Promise<RunResultValue> {
    return this.vms.run(options, streams);
  }

  /** The known environments and whether each is built on this host. */
  async listEnvironments() {
    return { environments: await listEnvironments() };
  }

  /**
   * Builds an environment (and the guest kernel and agent) unless it is cached and its
   * digest checks out; a partial or corrupt cache entry is rebuilt.
   * @throws PyroError `not_found` for an unknown environment
   */
  pullEnvironment(options: { environment: string }) {
    const { environment } = parseParams(EnvironmentParams, options);
    return pullEnvironment(environment, this.progress);
  }

  /** An environment's recipe and, once built, its manifest (packages, digest, versions). */
  inspectEnvironment(options: { environment: string }) {
    const { environment } = parseParams(EnvironmentParams, options);
    return inspectEnvironment(environment);
  }

  /** Removes cache entries that no current environment, kernel or agent uses. */
  pruneEnvironments() {
    return pruneEnvironments();
  }

  /** Checks the host: KVM, acceleration, QEMU, build tools and the artifact cache. */
  doctor(): Promise<DoctorReport> {
    return runDoctor();
  }
}
