import { cachePaths } from "../env/artifacts.js";
import { bootArtifacts, type BootArtifacts } from "../env/environments.js";
import { vmFiles, type ShimLaunchConfig } from "../shim/launch.js";
import type { ShimNetworkConfig } from "../shim/network.js";
import { silentProgress, type ProgressSink } from "../util/progress.js";
import { resolveAcceleration, type ResolvedAcceleration } from "../vmm/acceleration.js";
import { probeKvm } from "../vmm/probe.js";
import { chooseDriver, type VmmDecision } from "../vmm/select.js";
import { DEFAULTS } from "../contract/defaults.js";
import { STATE_DISK_BYTES } from "../vmstate/template-key.js";
import { planBoot, savedStatePlan, templateFor, type BootPlan } from "./boot-plan.js";
import type { BootChoice } from "./sandbox.js";
import type { SandboxKind, SandboxRecord } from "./records.js";

export interface RuntimeOptions {
  progress?: ProgressSink;
  /** Bound on guest boot (VMM start to agent answer). @default 60000 (TCG on a busy host) */
  bootTimeoutMs?: number;
  /** Extra guest kernel arguments, for tests that need a guest to misbehave. */
  extraKernelArgs?: string[];
}

/** Where a sandbox lives and how its shim treats it (see {@link SandboxKind} `launch`). */
export type LaunchSpec = SandboxKind<SandboxRecord>["launch"] & {
  id: string;
  dir: string;
  /** One-shot VMs: the process whose death ends the VM, which is deleted when it ends. */
  owner_pid?: number;
};

/** What VMs and workspaces share: artifacts, acceleration, VMM and the shim's launch config. */
export class SandboxRuntime {
  readonly progress: ProgressSink;
  private readonly bootTimeoutMs: number;
  private readonly extraKernelArgs: string[];
  private acceleration: Promise<ResolvedAcceleration> | undefined;
  private vmm: Promise<VmmDecision> | undefined;

  constructor(options: RuntimeOptions = {}) {
    this.progress = options.progress ?? silentProgress;
    this.bootTimeoutMs = options.bootTimeoutMs ?? 60_000;
    this.extraKernelArgs = options.extraKernelArgs ?? [];
  }

  /**
   * How to boot a sandbox: warm from a memory template when one fits (built on first
   * use), else cold, saying why (`boot-plan.ts`).
   */
  async planBoot(
    record: SandboxRecord,
    spec: LaunchSpec,
    options: BootChoice = {},
  ): Promise<BootPlan> {
    const artifacts = await bootArtifacts(record.environment, this.progress);
    const launch = await this.launchConfig(record, spec, artifacts);
    const saved = await options.restore?.(launch);
    if (saved) return savedStatePlan(launch, saved);
    return planBoot(launch, artifacts, spec.dir, { ...options, progress: this.progress });
  }

  /**
   * `pyro env pull`: verifies (or builds) the template of a default `pyro run` of the
   * environment (DEFAULTS' vcpus and memory, no NIC, a fresh state disk: `late`), retrying
   * a failed one now.
   */
  async pullTemplate(environment: string): Promise<TemplatePull> {
    const artifacts = await bootArtifacts(environment, this.progress);
    const { acceleration, decision } = await this.host(artifacts);
    if (decision.vmm !== "qemu") {
      const reason = `the ${decision.vmm} driver cannot restore memory templates`;
      return { status: "unavailable", key: null, reason };
    }
    const shape = {
      kind: "late" as const,
      vcpuCount: DEFAULTS.vcpu_count,
      memMib: DEFAULTS.mem_mib,
      acceleration,
      network: null,
      stateDiskBytes: STATE_DISK_BYTES,
    };
    const result = await templateFor(shape, artifacts, this.progress, { retryFailed: true });
    if (!result.ok) return { status: "failed", key: result.key, reason: result.reason };
    return { status: result.built ? "built" : "cached", key: result.key, reason: null };
  }

  /** The host's acceleration and VMM, found once per runtime. */
  private async host(artifacts: BootArtifacts) {
    this.acceleration ??= resolveAcceleration(cachePaths.accel(), () =>
      probeKvm(artifacts.kernel.path, artifacts.agent.initramfs),
    );
    const { acceleration } = await this.acceleration;
    this.vmm ??= chooseDriver(acceleration);
    return { acceleration, decision: await this.vmm };
  }

  /** Builds what the environment needs (first use only) and says how to boot it cold. */
  async launchConfig(
    record: SandboxRecord,
    spec: LaunchSpec,
    resolved?: BootArtifacts,
  ): Promise<ShimLaunchConfig> {
    const artifacts = resolved ?? (await bootArtifacts(record.environment, this.progress));
    const { acceleration, decision } = await this.host(artifacts);
    const network = networkOf(record);
    // Only QEMU has the guarded NIC (docs/architecture.md "Network plumbing"); a forced
    // PYRO_VMM=firecracker keeps its choice and the launch says why it cannot.
    const vmm =
      network && decision.vmm === "firecracker" && !process.env.PYRO_VMM ? "qemu" : decision.vmm;
    return {
      vm_id: spec.id,
      kernel_path: artifacts.kernel.path,
      initrd_path: artifacts.agent.initramfs,
      rootfs_path: artifacts.rootfs,
      state_disk_path: vmFiles(spec.dir).stateDisk,
      vcpu_count: record.vcpu_count,
      mem_mib: record.mem_mib,
      acceleration,
      vmm,
      hostname: spec.id.replace(/_/g, "-"),
      kernel_args: this.extraKernelArgs,
      ttl_seconds: record.ttl_seconds,
      ttl_action: spec.ttl_action,
      boot_timeout_ms: this.bootTimeoutMs,
      delete_on_exit: spec.owner_pid !== undefined,
      workspace_root: spec.workspace_root ?? null,
      owner_pid: spec.owner_pid ?? null,
      network,
      memory_path: vmm === "qemu" ? vmFiles(spec.dir).memory : null,
    };
  }
}

/** What `pyro env pull` says about the template of a default VM of the environment. */
export interface TemplatePull {
  status: "cached" | "built" | "failed" | "unavailable";
  key: string | null;
  reason: string | null;
}

/** A VM's `network: true` is `egress`; a workspace names its policy and allowlist. */
export function networkOf(record: SandboxRecord): ShimNetworkConfig | null {
  const policy = record.network_policy ?? (record.network ? "egress" : "off");
  if (policy === "off") return null;
  return { policy, allowed_domains: [...(record.allowed_domains ?? [])] };
}
