import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { BootArtifacts } from "../env/environments.js";
import { vmFiles, type ShimLaunchConfig } from "../shim/launch.js";
import type { ProgressSink } from "../util/progress.js";
import { templateBuilder } from "../vmstate/build-template.js";
import { templateKeyInputs, type TemplateShape } from "../vmstate/template-key.js";
import {
  cloneTemplate,
  CLONE_VMSTATE,
  ensureTemplate,
  recordTemplateFailure,
  type TemplateResult,
} from "../vmstate/templates.js";
import { createStateDisk } from "./boot.js";

/** How one boot goes: the shim's launch config and what the result reports about it. */
export interface BootPlan {
  launch: ShimLaunchConfig;
  boot_mode: "cold" | "warm";
  /** Why a boot that could have been warm is cold; null for warm boots. */
  cold_reason: string | null;
  /** The template a warm boot restores (blamed if the restore fails). */
  template_key: string | null;
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
    template_ms: Math.round(performance.now() - started),
  });
  if (options.cold) return cold("a cold boot was asked for (--cold)");
  if (launch.vmm !== "qemu")
    return cold(`the ${launch.vmm} driver cannot restore memory templates`);
  // A template's kernel has booted already: arguments only a fresh kernel reads need a cold boot.
  if (launch.kernel_args.length > 0) {
    return cold(`extra kernel arguments (${launch.kernel_args.join(" ")}) need a cold boot`);
  }
  try {
    const shape = await shapeOf(launch, dir);
    const template = await templateFor(shape, artifacts, options.progress);
    if (!template.ok) return cold(template.reason);
    const vmstate = join(dir, CLONE_VMSTATE);
    await cloneTemplate(template.key, memoryFile(dir), vmstate);
    return {
      launch: {
        ...launch,
        memory_path: memoryFile(dir),
        restore: { vmstate_path: vmstate, kind: "template" },
      },
      boot_mode: "warm",
      cold_reason: null,
      template_key: template.key,
      template_ms: Math.round(performance.now() - started),
    };
  } catch (error) {
    await removeCloneFiles(dir);
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
  await removeCloneFiles(dir);
  return {
    launch: { ...plan.launch, restore: null },
    boot_mode: "cold" as const,
    cold_reason: `the warm boot from the memory template failed (${firstLine(message)}); booted cold`,
    template_key: null,
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

/** The shape a template must have: the VM's resources, NIC and state disk size. */
async function shapeOf(launch: ShimLaunchConfig, dir: string): Promise<TemplateShape> {
  const disk = vmFiles(dir).stateDisk;
  if (!(await stat(disk).catch(() => undefined))) await createStateDisk(dir);
  const network = launch.network ? (await import("../shim/network.js")).vmmNetworkSpec() : null;
  return {
    vcpuCount: launch.vcpu_count,
    memMib: launch.mem_mib,
    acceleration: launch.acceleration,
    network,
    stateDiskBytes: (await stat(disk)).size,
  };
}

function memoryFile(dir: string): string {
  return vmFiles(dir).memory;
}

async function removeCloneFiles(dir: string): Promise<void> {
  await Promise.all(
    [memoryFile(dir), join(dir, CLONE_VMSTATE)].map((path) => rm(path, { force: true })),
  );
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function firstLine(text: string): string {
  return text.split("\n")[0]!.slice(0, 300);
}
