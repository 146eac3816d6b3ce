import { randomBytes } from "node:crypto";
import { cpus, totalmem } from "node:os";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { LIMITS } from "../contract/defaults.js";
import { PyroError } from "../contract/errors.js";
import { parseParams } from "../contract/validate.js";
import {
  CreateVmParams,
  ExecVmParams,
  RunParams,
  VmIdParams,
  type RunParamsInput,
  type RunResultValue,
} from "../contract/vm.js";
import type { z } from "zod";
import type {
  VmRecord as VmRecordSchema,
  ExecVmResult,
  NetworkInfo,
  ReapResult,
} from "../contract/vm.js";
import { bootArtifacts } from "../env/environments.js";
import type { ExecHandlers } from "../guest/client.js";
import { ShimClient } from "../shim/client.js";
import { vmFiles } from "../shim/launch.js";
import { withLock } from "../util/lock.js";
import { isProcessAlive, sleep } from "../util/process.js";
import type { ProgressSink } from "../util/progress.js";
import { bootSandbox, createSandboxDir, killQuietly } from "./boot.js";
import { commandResult } from "./command-result.js";
import { SandboxRuntime } from "./runtime.js";
import { checkId, listIds, liveState, readRecord, sandboxRoot, writeRecord } from "./records.js";

export type VmRecord = z.output<typeof VmRecordSchema>;
type CreateVmInput = z.input<typeof CreateVmParams>;

/** Host memory kept back from guests so the host itself keeps working. */
const HOST_RESERVED_MIB = 512;

export type RunOptions = ExecHandlers;

/** Creates, boots, runs in and tears down VMs. Never prints; throws PyroError. */
export class VmManager {
  private readonly progress: ProgressSink;

  constructor(private readonly runtime: SandboxRuntime = new SandboxRuntime()) {
    this.progress = runtime.progress;
  }

  /** `pyro run`: boot a fresh VM, run one command, delete the VM on every path. */
  async run(input: RunParamsInput, handlers: RunOptions = {}): Promise<RunResultValue> {
    const params = parseParams(RunParams, input);
    const startedAt = performance.now();
    const record = await this.create(params, { owned: true });
    const dir = vmDir(record.vm_id);
    const emit = (phase: string) =>
      this.progress({
        scope: "run",
        phase,
        fields: { vm_id: record.vm_id, environment: params.environment },
      });
    let client: ShimClient | undefined;
    try {
      emit("boot");
      const booted = await this.boot(record, { claim: true });
      client = booted.client;
      const agentReadyMs = performance.now() - startedAt;
      emit("exec");
      const { output, execMs } = await execCommand(
        client,
        params.command,
        params.timeout_seconds,
        handlers,
      );
      emit("teardown");
      const teardownStarted = performance.now();
      await client.stop(true);
      client.destroy();
      client = undefined;
      return {
        vm_id: record.vm_id,
        ...commandResult(params.command, output),
        environment: params.environment,
        acceleration: booted.acceleration,
        timings: {
          vmm_start_ms: booted.ready.timings.vmm_start_ms ?? 0,
          boot_ms: booted.ready.timings.boot_ms ?? 0,
          agent_ready_ms: Math.round(agentReadyMs),
          exec_ms: execMs,
          teardown_ms: Math.round(performance.now() - teardownStarted),
        },
      };
    } finally {
      // Closing the owning connection makes the shim delete the VM; wait for that, then
      // make sure of it (a shim that crashed cannot clean up after itself).
      client?.destroy();
      await waitForRemoval(dir, 10_000);
      await destroySandbox(dir);
    }
  }

  /** Validates, builds what the environment needs, and records a VM in state `created`. */
  async create(input: CreateVmInput, options: { owned?: boolean } = {}): Promise<VmRecord> {
    const params = parseParams(CreateVmParams, input);
    checkHostLimits(params.vcpu_count, params.mem_mib);
    refuseUnbuiltFeatures(params);
    await bootArtifacts(params.environment, this.progress);
    const vmId = newId("vm");
    const now = new Date();
    const record: VmRecord = {
      vm_id: vmId,
      environment: params.environment,
      state: "created",
      vcpu_count: params.vcpu_count,
      mem_mib: params.mem_mib,
      ttl_seconds: params.ttl_seconds,
      network: params.network,
      created_at: now.toISOString(),
      started_at: null,
      expires_at: new Date(now.getTime() + params.ttl_seconds * 1000).toISOString(),
      execution_mode: "guest",
      acceleration: null,
      error: null,
    };
    const dir = vmDir(vmId);
    await createSandboxDir(dir);
    // Written first, so a VM whose maker dies before anything else is still reapable.
    if (options.owned) await writeFile(vmFiles(dir).owner, String(process.pid), { mode: 0o600 });
    await writeRecord(dir, record);
    this.progress({
      scope: "run",
      phase: "create",
      fields: { vm_id: vmId, environment: params.environment },
    });
    return record;
  }

  async start(input: z.input<typeof VmIdParams>): Promise<VmRecord> {
    const { vm_id } = parseParams(VmIdParams, input);
    return this.withVm(vm_id, async (record) => {
      if (record.state === "started") {
        throw new PyroError(
          "conflict",
          `VM ${vm_id} is already started; run a command in it with vm_exec (SDK: execVm)`,
        );
      }
      const booted = await this.boot(record, { claim: false });
      booted.client.destroy();
      return this.readVm(vm_id);
    });
  }

  /** Runs one command in a started VM, then deletes the VM (CONTRACT.md `execVm`). */
  async exec(
    input: z.input<typeof ExecVmParams>,
    handlers: ExecHandlers = {},
  ): Promise<z.output<typeof ExecVmResult>> {
    const params = parseParams(ExecVmParams, input);
    const record = await this.status({ vm_id: params.vm_id });
    if (record.state !== "started") {
      throw new PyroError(
        "conflict",
        `VM ${params.vm_id} is ${record.state}, not started; start it with vm_start (SDK: startVm) first`,
      );
    }
    const client = await ShimClient.connect(vmDir(params.vm_id));
    try {
      const { output, execMs } = await execCommand(
        client,
        params.command,
        params.timeout_seconds,
        handlers,
      );
      const teardownStarted = performance.now();
      await client.stop(true);
      return {
        vm_id: record.vm_id,
        ...commandResult(params.command, output),
        acceleration: record.acceleration ?? "tcg",
        timings: { exec_ms: execMs, teardown_ms: Math.round(performance.now() - teardownStarted) },
      };
    } finally {
      client.destroy();
      // On success the shim already removed the VM; on failure this stops what is left.
      await destroySandbox(vmDir(params.vm_id));
    }
  }

  async stop(input: z.input<typeof VmIdParams>): Promise<VmRecord> {
    const { vm_id } = parseParams(VmIdParams, input);
    return this.withVm(vm_id, async (record) => {
      if (record.state !== "started") {
        throw new PyroError(
          "conflict",
          `VM ${vm_id} is ${record.state}, not started; there is nothing to stop`,
        );
      }
      const shimPid = (await liveState(vmDir(vm_id))).shim?.shim_pid;
      const client = await ShimClient.connect(vmDir(vm_id));
      try {
        await client.stop(false);
      } finally {
        client.destroy();
      }
      if (shimPid) await waitForExit(shimPid, 5_000);
      const stopped: VmRecord = { ...record, state: "stopped" };
      await writeRecord(vmDir(vm_id), stopped);
      return stopped;
    });
  }

  async delete(input: z.input<typeof VmIdParams>): Promise<{ vm_id: string; deleted: true }> {
    const { vm_id } = parseParams(VmIdParams, input);
    await this.readVm(vm_id);
    await destroySandbox(vmDir(vm_id));
    return { vm_id, deleted: true };
  }

  /** The record, reconciled with the VM's processes: a dead shim means a failed VM. */
  async status(input: z.input<typeof VmIdParams>): Promise<VmRecord> {
    const { vm_id } = parseParams(VmIdParams, input);
    return this.readVm(vm_id);
  }

  async networkInfo(input: z.input<typeof VmIdParams>): Promise<z.output<typeof NetworkInfo>> {
    const record = await this.status(input);
    return { vm_id: record.vm_id, network: record.network, interfaces: [], published_ports: [] };
  }

  /** Deletes VMs past their TTL and VMs whose supervisor died (with their VMM). */
  async reapExpired(): Promise<z.output<typeof ReapResult>> {
    const removed: z.output<typeof ReapResult>["removed"] = [];
    for (const vmId of await listIds("vms")) {
      const dir = vmDir(vmId);
      const record = await readRecord<VmRecord>(dir);
      const live = await liveState(dir);
      const expired = record !== undefined && Date.parse(record.expires_at) <= Date.now();
      const owner = Number(await readFile(vmFiles(dir).owner, "utf8").catch(() => "0"));
      const ownerAlive = owner > 0 && isProcessAlive(owner);
      const orphaned =
        (record === undefined && !ownerAlive) ||
        (record?.state === "started" && !live.shimAlive) ||
        (owner > 0 && !ownerAlive && !live.shimAlive);
      if (!expired && !orphaned) continue;
      await destroySandbox(dir);
      removed.push({ vm_id: vmId, reason: expired ? "expired" : "orphaned" });
    }
    return { removed };
  }

  private async boot(record: VmRecord, options: { claim: boolean }) {
    const dir = vmDir(record.vm_id);
    const launch = await this.runtime.launchConfig({
      ...record,
      id: record.vm_id,
      dir,
      ttl_action: "delete",
      delete_on_exit: options.claim,
      ...(options.claim ? { owner_pid: process.pid } : {}),
    });
    const accel = { acceleration: launch.acceleration };
    const now = new Date();
    try {
      const booted = await bootSandbox(dir, launch, options);
      await writeRecord(dir, {
        ...record,
        state: "started",
        started_at: now.toISOString(),
        expires_at: new Date(now.getTime() + record.ttl_seconds * 1000).toISOString(),
        acceleration: accel.acceleration,
        error: null,
      } satisfies VmRecord);
      return { ...booted, acceleration: accel.acceleration };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await writeRecord(dir, {
        ...record,
        state: "failed",
        error: message,
      } satisfies VmRecord).catch(() => {});
      throw error;
    }
  }

  private async readVm(vmId: string): Promise<VmRecord> {
    checkId(vmId, "vm");
    const dir = vmDir(vmId);
    const record = await readRecord<VmRecord>(dir);
    if (!record) {
      throw new PyroError(
        "not_found",
        `no VM with id "${vmId}"; it may have been deleted or reached its ttl`,
        {
          details: { vm_id: vmId },
        },
      );
    }
    if (record.state !== "started") return record;
    const live = await liveState(dir);
    if (live.shimAlive) return record;
    const reason = live.shim?.error ?? "its supervisor process died";
    return { ...record, state: "failed", error: reason };
  }

  /** State changes on one VM are serialised by a lock in its directory. */
  private async withVm<T>(vmId: string, fn: (record: VmRecord) => Promise<T>): Promise<T> {
    await this.readVm(vmId); // not_found before a lock file could create the directory
    return withLock(join(vmDir(vmId), "lock"), async () => fn(await this.readVm(vmId)), {
      timeoutMs: 120_000,
      createParent: false,
    });
  }
}

function vmDir(vmId: string): string {
  return join(sandboxRoot("vms"), vmId);
}

/** Stops whatever runs for a sandbox directory and removes it. */
export async function destroySandbox(dir: string): Promise<void> {
  const live = await liveState(dir);
  if (live.shimAlive) {
    const client = await ShimClient.connect(dir).catch(() => undefined);
    await client?.stop(true).catch(() => {});
    client?.destroy();
  }
  const after = await liveState(dir);
  if (after.vmmAlive && after.shim?.vmm_pid) killQuietly(after.shim.vmm_pid);
  if (after.shimAlive && after.shim) killQuietly(after.shim.shim_pid);
  await rm(dir, { recursive: true, force: true });
}

async function execCommand(
  client: ShimClient,
  command: string[],
  timeoutSeconds: number,
  handlers: ExecHandlers,
) {
  const started = performance.now();
  const output = await client.exec(
    { argv: command, timeout_ms: timeoutSeconds * 1000, max_output_bytes: LIMITS.max_output_bytes },
    handlers,
  );
  return { output, execMs: Math.round(performance.now() - started) };
}

function refuseUnbuiltFeatures(params: { network: boolean; allow_host_compat: boolean }): void {
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

export function newId(prefix: "vm" | "ws"): string {
  return `${prefix}_${randomBytes(6).toString("hex")}`;
}

async function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid) && Date.now() < deadline) await sleep(10);
}

async function waitForRemoval(dir: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await liveState(dir)).shimAlive && !(await readRecord(dir))) return;
    await sleep(20);
  }
}
