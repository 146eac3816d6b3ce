import { cpus, totalmem } from "node:os";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { LIMITS } from "../contract/defaults.js";
import { PyroError } from "../contract/errors.js";
import { ShimClient } from "../shim/client.js";
import { vmFiles, type ShimLaunchConfig } from "../shim/launch.js";
import { pathExists } from "../util/fs.js";
import { CLONE_VMSTATE } from "../vmstate/templates.js";
import { discardSavedState } from "../vmstate/saved-state.js";
import { isProcessAlive, sleep } from "../util/process.js";
import { bootSandbox, killSandboxProcesses, type BootedSandbox } from "./boot.js";
import type { BootPlan } from "./boot-plan.js";
import { blameTemplate, coldAfterWarmFailure } from "./boot-plan.js";
import { liveState } from "./records.js";
import type { SandboxRuntime } from "./runtime.js";
import type { SandboxRecord, SandboxStore } from "./records.js";

/** Host memory kept back from guests so the host itself keeps working. */
const HOST_RESERVED_MIB = 512;
/** How long a shim may take to exit after it answered a stop. */
const SHIM_EXIT_MS = 5_000;

type Acceleration = NonNullable<SandboxRecord["acceleration"]>;

/** Guest work a boot does before the sandbox counts as started. */
export type GuestPrepare = (client: ShimClient) => Promise<void>;

/**
 * Chooses, once the launch config is known, whether the boot restores a saved VM (resume,
 * fork) and from what; null boots as usual (warm from a template when one fits).
 */
export type RestoreChoice = (launch: ShimLaunchConfig) => Promise<ShimLaunchConfig["restore"]>;

/** How a boot may go: `cold` forbids templates; `restore` restores a saved VM. */
export interface BootChoice {
  cold?: boolean;
  restore?: RestoreChoice;
}

/** Why a sandbox's VM is being ended by a caller (the shim's own TTL stop is not one). */
export type StopReason = "stop" | "reset" | "delete";

/** What a {@link BeforeStopHook} is told. */
export interface BeforeStopEvent {
  id: string;
  reason: StopReason;
  /** A connection to the VM's shim; undefined when the VM is not running (crashed, stopped). */
  guest: ShimClient | undefined;
}

/**
 * Runs on every stop, reset and delete before the VM goes (also when it is not running),
 * with the sandbox's state lock held, so it must not take that lock itself: the place to
 * stop guest processes gracefully and record that they were stopped and why.
 */
export type BeforeStopHook = (event: BeforeStopEvent) => Promise<void>;

/**
 * The sandbox core's lifecycle: boot, power-off and teardown of one kind of sandbox,
 * with the before-stop hooks of this manager instance.
 */
export class Sandboxes<R extends SandboxRecord> {
  private readonly beforeStopHooks: BeforeStopHook[] = [];

  constructor(
    readonly store: SandboxStore<R>,
    private readonly runtime: SandboxRuntime,
  ) {}

  onBeforeStop(hook: BeforeStopHook): void {
    this.beforeStopHooks.push(hook);
  }

  /**
   * Boots a sandbox that is not running; `runningHint` says what to do with a running one.
   * `prepare` runs in the guest before the sandbox counts as started (workspace secrets).
   */
  async start(
    id: string,
    runningHint: string,
    prepare?: GuestPrepare,
    options: { cold?: boolean } = {},
  ): Promise<R> {
    return this.store.withLock(id, async () => {
      const record = await this.store.requireState(id, "not started", runningHint);
      await this.boot(record, { ...(prepare ? { prepare } : {}), ...options });
      return this.store.load(id);
    });
  }

  /** A paused sandbox stops too: its saved VM is discarded (its disk stays). */
  async stop(id: string): Promise<R> {
    return this.store.withLock(id, async () => {
      const record = await this.store.reconciled(id);
      if (record.state !== "paused")
        await this.store.requireState(id, "started", "there is nothing to stop");
      await this.powerOff(id, "stop");
      return this.store.update(id, (r) => this.store.stopped(r));
    });
  }

  /** Under the state lock, so a start or reset in flight cannot boot it again after. */
  async delete(id: string): Promise<void> {
    await this.store.withLock(id, () => this.destroy(id, "delete"));
  }

  /**
   * Boots the sandbox's VM on its state disk. With `claim`, the VM's life is tied to the
   * returned connection (one-shot runs); otherwise no connection is kept. With
   * `contentPending` the record stays as it is (failed, saying why) until the caller has
   * put the content in and calls {@link markStarted}: a crash in between must not look
   * like a healthy sandbox.
   */
  async boot(
    record: R,
    options: {
      claim?: boolean;
      contentPending?: boolean;
      prepare?: GuestPrepare;
      /** Boot cold even when a memory template fits (`--cold`). */
      cold?: boolean;
      /** Restore a saved VM (resume, fork) instead; its null = boot as usual. */
      restore?: RestoreChoice;
    } = {},
  ) {
    const id = this.store.kind.idOf(record);
    const dir = this.store.dir(id);
    const claim = options.claim ?? false;
    const choice = {
      cold: options.cold ?? false,
      ...(options.restore && { restore: options.restore }),
    };
    const { plan, booted } = await this.bootWarmOrCold(record, dir, claim, choice);
    const boot = bootReport(plan, booted.ready);
    try {
      await options.prepare?.(booted.client);
    } catch (error) {
      // Not started after all: the VM goes, and the record keeps what it said before.
      await booted.client.stop(false).catch(() => {});
      booted.client.destroy();
      throw error;
    }
    try {
      if (options.contentPending) await this.store.update(id, (r) => ({ ...r, ...boot }));
      else await this.markStarted(id, plan.launch.acceleration, {}, boot);
    } catch (error) {
      booted.client.destroy();
      throw error;
    }
    if (!claim) booted.client.destroy();
    return { ...booted, acceleration: plan.launch.acceleration, boot };
  }

  /**
   * Boots from a saved VM or a memory template when one fits, cold otherwise; a warm boot
   * from a template that fails is retried cold once (the plan says why). A failure of the
   * boot that counts marks the record failed and is thrown.
   */
  private async bootWarmOrCold(record: R, dir: string, claim: boolean, choice: BootChoice) {
    const id = this.store.kind.idOf(record);
    const spec = {
      ...this.store.kind.launch,
      id,
      dir,
      ...(claim ? { owner_pid: process.pid } : {}),
    };
    let plan = await this.runtime.planBoot(record, spec, choice);
    try {
      let warmFailure: { key: string; error: unknown } | undefined;
      if (plan.template_key) {
        const key = plan.template_key;
        const booted = await bootSandbox(dir, plan.launch, { claim }).catch(async (error) => {
          warmFailure = { key, error };
          await settleFailedShim(dir, claim);
          plan = await coldAfterWarmFailure(plan, dir, error);
          // A claimed VM's shim removed its directory when the boot failed: make it again.
          if (claim) await this.store.create(record, writeOwner);
          return undefined;
        });
        // The shim has restored from its copy of the device state; it is of no more use.
        await rm(join(dir, CLONE_VMSTATE), { force: true });
        if (booted) return { plan, booted };
      }
      const booted = await bootSandbox(dir, plan.launch, { claim });
      if (warmFailure) await blameTemplate(warmFailure.key, warmFailure.error);
      return { plan, booted };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      // A claimed VM that failed is already gone with its directory: nothing to record.
      await this.store
        .update(id, (r) => ({ ...r, state: "failed", error: message }))
        .catch(() => {});
      throw error;
    }
  }

  /** `boot` is what the boot reported, for a caller that did not pass it on earlier. */
  async markStarted(
    id: string,
    acceleration: Acceleration,
    changes: Partial<R> = {},
    boot?: BootReport,
  ): Promise<R> {
    return this.store.update(id, (r) => ({
      ...r,
      ...boot,
      state: "started",
      error: null,
      acceleration,
      ...this.store.kind.startedFields(r, new Date().toISOString()),
      ...changes,
    }));
  }

  /** One connection to the sandbox's shim for the duration of `fn`. */
  async withGuest<T>(id: string, fn: (client: ShimClient) => Promise<T>): Promise<T> {
    const client = await ShimClient.connect(this.store.dir(id));
    try {
      return await fn(client);
    } finally {
      client.destroy();
    }
  }

  /**
   * Runs the before-stop hooks, then has the shim power the VM off (with `remove`, and
   * delete its directory) and waits for the shim to exit. A saved VM (paused) is
   * discarded: whatever comes next boots the disk.
   */
  async powerOff(id: string, reason: StopReason, options: { remove?: boolean } = {}) {
    const dir = this.store.dir(id);
    const live = await liveState(dir);
    if (!live.shimAlive || !live.shim) {
      await this.beforeStop({ id, reason, guest: undefined });
    } else {
      await this.withGuest(id, async (guest) => {
        await this.beforeStop({ id, reason, guest });
        await guest.stop(options.remove ?? false);
      });
      await waitForExit(live.shim.shim_pid, SHIM_EXIT_MS);
    }
    if (!options.remove) await discardSavedState(dir);
  }

  /** Ends whatever runs for the sandbox (hooks first, then by force) and removes it. */
  async destroy(id: string, reason: StopReason = "delete"): Promise<void> {
    const dir = this.store.dir(id);
    await this.powerOff(id, reason, { remove: true }).catch(() => {});
    await killSandboxProcesses(dir);
    await rm(dir, { recursive: true, force: true });
  }

  /**
   * A hook that fails does not keep the VM running: the power-off that follows ends every
   * guest process anyway, and a stop that cannot complete would leave a VM nobody wants.
   */
  private async beforeStop(event: BeforeStopEvent): Promise<void> {
    await Promise.allSettled(this.beforeStopHooks.map((hook) => hook(event)));
  }
}

export function checkHostLimits(vcpuCount: number, memMib: number): void {
  const cores = cpus().length;
  if (vcpuCount > cores) {
    throw new PyroError(
      "invalid_argument",
      `vcpu_count must be between 1 and ${cores} (this host's cores), got ${vcpuCount}`,
      { details: { field: "vcpu_count", min: 1, max: cores } },
    );
  }
  const maxMib = Math.floor(totalmem() / 2 ** 20) - HOST_RESERVED_MIB;
  if (memMib > maxMib) {
    throw new PyroError(
      "invalid_argument",
      `mem_mib must be between ${LIMITS.min_mem_mib} and ${maxMib} on this host, got ${memMib}`,
      { details: { field: "mem_mib", min: LIMITS.min_mem_mib, max: maxMib } },
    );
  }
}

/** Refusals of what both kinds accept in their schema but cannot do yet. */
export function refuseUnbuiltFeatures(params: { allow_host_compat: boolean }): void {
  if (params.allow_host_compat) {
    throw new PyroError(
      "unavailable",
      "host compatibility mode is not available yet; run without --allow-host-compat",
    );
  }
}

export async function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid) && Date.now() < deadline) await sleep(10);
}

/** What a boot reports and a record keeps: how it booted and how long each part took. */
export interface BootReport {
  boot_mode: "cold" | "warm";
  cold_reason: string | null;
  timings: {
    template_ms: number;
    vmm_start_ms: number;
    restore_ms: number;
    boot_ms: number;
  };
}

function bootReport(plan: BootPlan, ready: BootedSandbox["ready"]): BootReport {
  const timings = ready.timings as { vmm_start_ms?: number; boot_ms?: number; restore_ms?: number };
  return {
    boot_mode: plan.boot_mode,
    cold_reason: plan.cold_reason,
    timings: {
      template_ms: plan.template_ms,
      vmm_start_ms: timings.vmm_start_ms ?? 0,
      restore_ms: timings.restore_ms ?? 0,
      boot_ms: timings.boot_ms ?? 0,
    },
  };
}

/**
 * A shim whose boot failed answers before it has cleaned up (removed its socket, and a
 * one-shot VM's whole directory); a retry started before that would lose its files to
 * it. Bounded: a shim that hangs in its cleanup is killed by the retry's own boot.
 */
async function settleFailedShim(dir: string, claim: boolean): Promise<void> {
  const pid = (await liveState(dir)).shim?.shim_pid;
  if (pid) await waitForExit(pid, SHIM_EXIT_MS);
  const deadline = Date.now() + SHIM_EXIT_MS;
  while (claim && (await pathExists(dir)) && Date.now() < deadline) await sleep(20);
}

/** One-shot VMs record their maker's pid first (`vms.ts`), so a dead maker's VM is reaped. */
async function writeOwner(dir: string): Promise<void> {
  await writeFile(vmFiles(dir).owner, String(process.pid), { mode: 0o600 });
}
