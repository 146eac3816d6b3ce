import { cpus, totalmem } from "node:os";
import { rm } from "node:fs/promises";
import { LIMITS } from "../contract/defaults.js";
import { PyroError } from "../contract/errors.js";
import { ShimClient } from "../shim/client.js";
import type { ShimLaunchConfig } from "../shim/launch.js";
import { discardSavedState } from "../vmstate/saved-state.js";
import { isProcessAlive, sleep } from "../util/process.js";
import { bootSandbox, killSandboxProcesses } from "./boot.js";
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
 * fork) and from what; null boots as usual.
 */
export type RestoreChoice = (launch: ShimLaunchConfig) => Promise<ShimLaunchConfig["restore"]>;

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
  async start(id: string, runningHint: string, prepare?: GuestPrepare): Promise<R> {
    return this.store.withLock(id, async () => {
      const record = await this.store.requireState(id, "not started", runningHint);
      await this.boot(record, prepare ? { prepare } : {});
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
      restore?: RestoreChoice;
    } = {},
  ) {
    const id = this.store.kind.idOf(record);
    const dir = this.store.dir(id);
    const claim = options.claim ?? false;
    const base = await this.runtime.launchConfig(record, {
      ...this.store.kind.launch,
      id,
      dir,
      ...(claim ? { owner_pid: process.pid } : {}),
    });
    const launch = options.restore ? { ...base, restore: await options.restore(base) } : base;
    const booted = await bootSandbox(dir, launch, { claim }).catch(async (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      // A claimed VM that failed is already gone with its directory: nothing to record.
      await this.store
        .update(id, (r) => ({ ...r, state: "failed", error: message }))
        .catch(() => {});
      throw error;
    });
    try {
      await options.prepare?.(booted.client);
    } catch (error) {
      // Not started after all: the VM goes, and the record keeps what it said before.
      await booted.client.stop(false).catch(() => {});
      booted.client.destroy();
      throw error;
    }
    try {
      if (!options.contentPending) await this.markStarted(id, launch.acceleration);
    } catch (error) {
      booted.client.destroy();
      throw error;
    }
    if (!claim) booted.client.destroy();
    return { ...booted, acceleration: launch.acceleration };
  }

  async markStarted(id: string, acceleration: Acceleration, changes: Partial<R> = {}): Promise<R> {
    return this.store.update(id, (r) => ({
      ...r,
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
