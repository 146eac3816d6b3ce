import { randomBytes } from "node:crypto";
import { cpus, totalmem } from "node:os";
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../contract/errors.js";
import { parseParams } from "../contract/validate.js";
import { RunParams, type RunParamsInput, type RunResultValue } from "../contract/vm.js";
import { cachePaths } from "../env/artifacts.js";
import { bootArtifacts, type BootArtifacts } from "../env/environments.js";
import type { ExecHandlers } from "../guest/client.js";
import { ShimClient, spawnShim } from "../shim/client.js";
import { vmFiles, type ShimLaunchConfig } from "../shim/launch.js";
import { writeJsonAtomic } from "../util/fs.js";
import { pyroHome } from "../util/paths.js";
import { isProcessAlive, runChecked, sleep } from "../util/process.js";
import { silentProgress, type ProgressSink } from "../util/progress.js";
import { resolveAcceleration, type ResolvedAcceleration } from "../vmm/acceleration.js";
import { probeKvm } from "../vmm/probe.js";
import { LIMITS } from "../contract/defaults.js";

/** Exit status reported for a command killed by its timeout (like `timeout(1)`). */
export const TIMEOUT_EXIT_CODE = 124;
/** Writable layer of each VM: sparse, so only what the guest writes takes host disk. */
const STATE_DISK_SIZE = "8G";
const STATE_DISK_LABEL = "pyro-state";
/** Host memory kept back from guests so the host itself keeps working. */
const HOST_RESERVED_MIB = 512;

export interface ManagerOptions {
  progress?: ProgressSink;
  /** Bound on guest boot (VMM start to agent answer). @default 60000 (TCG on a busy host) */
  bootTimeoutMs?: number;
  /** Extra guest kernel arguments, for tests that need a guest to misbehave. */
  extraKernelArgs?: string[];
}

export interface RunOptions extends ExecHandlers {
  /** Called once the VM exists, with its id (for cleanup on interrupt). */
  onVmCreated?: (vmId: string) => void;
}

/** Creates, boots, runs in and tears down VMs. Never prints; throws PyroError. */
export class VmManager {
  private readonly progress: ProgressSink;
  private readonly bootTimeoutMs: number;
  private readonly extraKernelArgs: string[];
  private acceleration: Promise<ResolvedAcceleration> | undefined;

  constructor(options: ManagerOptions = {}) {
    this.progress = options.progress ?? silentProgress;
    this.bootTimeoutMs = options.bootTimeoutMs ?? 60_000;
    this.extraKernelArgs = options.extraKernelArgs ?? [];
  }

  static vmsDir(): string {
    return join(pyroHome(), "vms");
  }

  /** `pyro run`: boot a fresh VM, run one command, delete the VM on every path. */
  async run(input: RunParamsInput, options: RunOptions = {}): Promise<RunResultValue> {
    const params = parseParams(RunParams, input);
    checkHostLimits(params.vcpu_count, params.mem_mib);
    if (params.network) {
      throw new PyroError(
        "unavailable",
        "network access for VMs is not available yet; run without --network",
      );
    }
    if (params.allow_host_compat) {
      throw new PyroError(
        "unavailable",
        "host compatibility mode is not available yet; run without --allow-host-compat",
      );
    }
    const artifacts = await bootArtifacts(params.environment, this.progress);
    const accel = await this.resolveAcceleration(artifacts);
    const vmId = newId("vm");
    const dir = join(VmManager.vmsDir(), vmId);
    const emit = (phase: string) =>
      this.progress({
        scope: "run",
        phase,
        fields: { vm_id: vmId, environment: params.environment },
      });
    const startedAt = performance.now();
    let client: ShimClient | undefined;
    try {
      emit("create");
      await this.prepareVmDir(dir, {
        vm_id: vmId,
        kernel_path: artifacts.kernel.path,
        initrd_path: artifacts.agent.initramfs,
        rootfs_path: artifacts.rootfs,
        state_disk_path: vmFiles(dir).stateDisk,
        vcpu_count: params.vcpu_count,
        mem_mib: params.mem_mib,
        acceleration: accel.acceleration,
        hostname: vmId.replace(/_/g, "-"),
        kernel_args: this.extraKernelArgs,
        ttl_seconds: params.ttl_seconds,
        boot_timeout_ms: this.bootTimeoutMs,
        delete_on_exit: true,
      });
      options.onVmCreated?.(vmId);
      emit("boot");
      await spawnShim(dir);
      client = await ShimClient.connect(dir);
      await client.claim();
      const ready = await client.waitReady();
      if (ready.state !== "ready") {
        throw new PyroError("unavailable", `the VM failed to boot: ${ready.error ?? ready.state}`);
      }
      const agentReadyMs = performance.now() - startedAt;
      emit("exec");
      const execStarted = performance.now();
      const output = await client.exec(
        {
          argv: params.command,
          timeout_ms: params.timeout_seconds * 1000,
          max_output_bytes: LIMITS.max_output_bytes,
        },
        options,
      );
      const execMs = performance.now() - execStarted;
      emit("teardown");
      const teardownStarted = performance.now();
      await client.stop(true);
      client.destroy();
      client = undefined;
      const teardownMs = performance.now() - teardownStarted;
      return {
        vm_id: vmId,
        environment: params.environment,
        command: params.command,
        exit_code: output.timed_out
          ? TIMEOUT_EXIT_CODE
          : exitCodeOf(output.exit_code, output.signal),
        stdout: output.stdout.toString("utf8"),
        stderr: output.stderr.toString("utf8"),
        duration_ms: Math.round(output.duration_ms),
        timed_out: output.timed_out,
        stdout_truncated: output.stdout_truncated,
        stderr_truncated: output.stderr_truncated,
        execution_mode: "guest",
        acceleration: accel.acceleration,
        timings: {
          vmm_start_ms: ready.timings.vmm_start_ms ?? 0,
          boot_ms: ready.timings.boot_ms ?? 0,
          agent_ready_ms: Math.round(agentReadyMs),
          exec_ms: Math.round(execMs),
          teardown_ms: Math.round(teardownMs),
        },
      };
    } finally {
      if (client) {
        // Closing the owning connection makes the shim delete the VM; wait for that.
        client.destroy();
        await waitForRemoval(dir, 10_000);
      }
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** KVM or TCG for this host (probed once per host kernel, then cached). */
  resolveAcceleration(artifacts: BootArtifacts): Promise<ResolvedAcceleration> {
    this.acceleration ??= resolveAcceleration(cachePaths.accel(), () =>
      probeKvm(artifacts.kernel.path, artifacts.agent.initramfs),
    );
    return this.acceleration;
  }

  private async prepareVmDir(dir: string, config: ShimLaunchConfig): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const files = vmFiles(dir);
    await runChecked("create the VM's state disk", "mkfs.ext4", [
      "-q",
      "-F",
      "-L",
      STATE_DISK_LABEL,
      "-E",
      "lazy_itable_init=1,lazy_journal_init=1",
      files.stateDisk,
      STATE_DISK_SIZE,
    ]);
    await writeJsonAtomic(files.launch, config, 0o600);
  }

  /** Removes VM directories whose shim is gone (crashed or killed), with their VMMs. */
  async reapOrphans(): Promise<string[]> {
    const removed: string[] = [];
    const entries = await readdir(VmManager.vmsDir()).catch(() => [] as string[]);
    for (const id of entries) {
      const dir = join(VmManager.vmsDir(), id);
      const status = await import("../util/fs.js").then((m) =>
        m.readJsonIfExists<{ shim_pid: number; vmm_pid: number | null }>(vmFiles(dir).status),
      );
      if (status && isProcessAlive(status.shim_pid)) continue;
      if (status?.vmm_pid && isProcessAlive(status.vmm_pid))
        process.kill(status.vmm_pid, "SIGKILL");
      await rm(dir, { recursive: true, force: true });
      removed.push(id);
    }
    return removed;
  }
}

export function checkHostLimits(vcpuCount: number, memMib: number): void {
  const cores = cpus().length;
  if (vcpuCount > cores) {
    throw new PyroError(
      "invalid_argument",
      `vcpu_count must be between 1 and ${cores} (this host's cores), got ${vcpuCount}`,
      {
        details: { field: "vcpu_count", min: 1, max: cores },
      },
    );
  }
  const maxMib = Math.floor(totalmem() / 2 ** 20) - HOST_RESERVED_MIB;
  if (memMib > maxMib) {
    throw new PyroError(
      "invalid_argument",
      `mem_mib must be between ${LIMITS.min_mem_mib} and ${maxMib} on this host, got ${memMib}`,
      {
        details: { field: "mem_mib", min: LIMITS.min_mem_mib, max: maxMib },
      },
    );
  }
}

/** A shell-style status: the exit code, or 128+N when killed by signal N. */
function exitCodeOf(exitCode: number | null, signal: string | null): number {
  if (exitCode !== null) return exitCode;
  const numbers: Record<string, number> = {
    HUP: 1,
    INT: 2,
    QUIT: 3,
    KILL: 9,
    SEGV: 11,
    PIPE: 13,
    TERM: 15,
    ABRT: 6,
  };
  return 128 + (signal ? (numbers[signal] ?? 0) : 0);
}

export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString("hex")}`;
}

async function waitForRemoval(dir: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const exists = await readdir(dir).then(
      () => true,
      () => false,
    );
    if (!exists) return;
    await sleep(20);
  }
}
