import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { BootArtifacts } from "../env/environments.js";
import { vmFiles, type ShimLaunchConfig } from "../shim/launch.js";
import type { ProgressSink } from "../util/progress.js";
import { templateBuilder } from "../vmstate/build-template.js";
import {
  STATE_DISK_BYTES,
  templateKeyInputs,
  type TemplateKind,
  type TemplateShape,
} from "../vmstate/template-key.js";
import {
  cloneTemplate,
  CLONE_VMSTATE,
  ensureTemplate,
  recordTemplateFailure,
  type TemplateResult,
} from "../vmstate/templates.js";

/** How one boot goes: the shim's launch config and what the result reports about it. */
export interface BootPlan {
  launch: ShimLaunchConfig;
  boot_mode: "cold" | "warm";
  /** Why a boot that could have been warm is cold; null for warm boots. */
  cold_reason: string | null;
  /** The template a warm boot restores (blamed if the restore fails). */
  template_key: string | null;
  /** `late`: the VM's state disk is the template's copy (a cold retry needs a fresh one). */
  template_kind: TemplateKind | null;
  /** Finding, building (first use) and copying the template. */
  template_ms: number;
}

export interface PlanOptions {
  /** `--cold`: boot cold even when a template fits. */
  cold?: boolean;
  progress: ProgressSink;
}

/**
 * Warm when the VMM can restore (QEMU) and a template of the VM's exact shape exists or
 * can be built now; every other case boots cold and says why. Never throws for a
 * template problem: a cold boot is always the way out.
 */
export async function planBoot(
  launch: ShimLaunchConfig,
  artifacts: BootArtifacts,
  dir: string,
  options: PlanOptions,
): Promise<BootPlan> {
  const started = performance.now();
  const cold = (reason: string): BootPlan => ({
    launch,
    boot_mode: "cold",
    cold_reason: reason,
    template_key: null,
    template_kind: null,
    template_ms: Math.round(performance.now() - started),
  });
  if (options.cold) return cold("a cold boot was asked for (--cold)");
  if (launch.vmm !== "qemu")
    return cold(`the ${launch.vmm} driver cannot restore memory templates`);
  // A template's kernel has booted already: arguments only a fresh kernel reads need a cold boot.
  if (launch.kernel_args.length > 0) {
    return cold(`extra kernel arguments (${launch.kernel_args.join(" ")}) need a cold boot`);
  }
  const freshDisk = !(await stat(vmFiles(dir).stateDisk).catch(() => undefined));
  try {
    const shape = await shapeOf(launch, dir, freshDisk);
    const template = await templateFor(shape, artifacts, options.progress);
    if (!template.ok) return cold(template.reason);
    const vmstate = join(dir, CLONE_VMSTATE);
    const late = shape.kind === "late";
    await cloneTemplate(template.key, {
      memory: memoryFile(dir),
      vmstate,
      ...(late ? { stateDisk: vmFiles(dir).stateDisk } : {}),
    });
    return {
      launch: {
        ...launch,
        memory_path: memoryFile(dir),
        restore: { vmstate_path: vmstate, kind: "template" },
      },
      boot_mode: "warm",
      cold_reason: null,
      template_key: template.key,
      template_kind: shape.kind,
      template_ms: Math.round(performance.now() - started),
    };
  } catch (error) {
    await removeCloneFiles(dir, freshDisk);
    return cold(`the memory template could not be used: ${messageOf(error)}`);
  }
}

/** Resume and fork: the caller's saved VM, restored as it is (no template, no fallback). */
export function savedStatePlan(
  launch: ShimLaunchConfig,
  restore: NonNullable<ShimLaunchConfig["restore"]>,
): BootPlan {
  return {
    launch: { ...launch, restore },
    boot_mode: "warm",
    cold_reason: null,
    template_key: null,
    template_kind: null,
    template_ms: 0,
  };
}

/**
 * After a warm boot failed: the template is blamed (removed, not retried for a while),
 * the clone's files go, and the same VM boots cold once.
 */
export async function coldAfterWarmFailure(plan: BootPlan, dir: string, error: unknown) {
  const message = messageOf(error);
  if (plan.template_key) {
    await recordTemplateFailure(plan.template_key, "restore", message).catch(() => {});
  }
  await removeCloneFiles(dir, plan.template_kind === "late");
  return {
    launch: { ...plan.launch, restore: null },
    boot_mode: "cold" as const,
    cold_reason: `the warm boot from the memory template failed (${firstLine(message)}); booted cold`,
    template_key: null,
    template_kind: null,
    template_ms: plan.template_ms,
  } satisfies BootPlan;
}

/** The template of this shape, built now if missing (with a progress line saying so). */
export async function templateFor(
  shape: TemplateShape,
  artifacts: BootArtifacts,
  progress: ProgressSink,
  options: { retryFailed?: boolean } = {},
): Promise<TemplateResult> {
  const inputs = await templateKeyInputs(shape, artifacts);
  const environment = artifacts.environment;
  return ensureTemplate(inputs, templateBuilder(shape, artifacts), {
    ...options,
    onBuild: () =>
      progress({
        scope: "template",
        phase: "build",
        fields: { environment },
        detail: `building a memory template for ${environment} (once, ~2 s)`,
      }),
    onWait: (pid) =>
      progress({ scope: "template", phase: "wait-lock", fields: { environment, pid } }),
  });
}

/**
 * The shape a template must have: the VM's resources, NIC and state disk size, and its
 * kind. A VM without a state disk yet (a fresh one-shot or new VM) takes a `late`
 * template and gets the template's disk; one with its own disk an `early` template.
 */
async function shapeOf(
  launch: ShimLaunchConfig,
  dir: string,
  freshDisk: boolean,
): Promise<TemplateShape> {
  const network = launch.network ? (await import("../shim/network.js")).vmmNetworkSpec() : null;
  return {
    kind: freshDisk ? "late" : "early",
    vcpuCount: launch.vcpu_count,
    memMib: launch.mem_mib,
    acceleration: launch.acceleration,
    network,
    stateDiskBytes: freshDisk ? STATE_DISK_BYTES : (await stat(vmFiles(dir).stateDisk)).size,
  };
}

function memoryFile(dir: string): string {
  return vmFiles(dir).memory;
}

/** With `stateDisk`, the disk came from the template too: a cold boot makes a fresh one. */
async function removeCloneFiles(dir: string, stateDisk: boolean): Promise<void> {
  const files = [memoryFile(dir), join(dir, CLONE_VMSTATE)];
  if (stateDisk) files.push(vmFiles(dir).stateDisk);
  await Promise.all(files.map((path) => rm(path, { force: true })));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function firstLine(text: string): string {
  return text.split("\n")[0]!.slice(0, 300);
}
