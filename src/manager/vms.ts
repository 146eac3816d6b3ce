import { readFile, writeFile } from "node:fs/promises";
import type { z } from "zod";
import { LIMITS } from "../contract/defaults.js";
import { parseParams } from "../contract/validate.js";
import {
  CreateVmParams,
  ExecVmParams,
  RunParams,
  StartVmParams,
  VmIdParams,
  type ExecVmResult,
  type NetworkInfo,
  type ReapResult,
  type RunParamsInput,
  type RunResultValue,
  type VmRecord as VmRecordSchema,
} from "../contract/vm.js";
import { bootArtifacts } from "../env/environments.js";
import type { ExecHandlers } from "../guest/client.js";
import type { ShimClient } from "../shim/client.js";
import { vmFiles } from "../shim/launch.js";
import { isProcessAlive, sleep } from "../util/process.js";
import type { ProgressSink } from "../util/progress.js";
import { commandResult } from "./command-result.js";
import { SandboxRuntime } from "./runtime.js";
import { networkStatus, noNetwork } from "./network.js";
import { checkHostLimits, refuseUnbuiltFeatures, Sandboxes } from "./sandbox.js";
import { expiresAt, liveState, readRecord, SandboxStore } from "./records.js";

export type VmRecord = z.output<typeof VmRecordSchema>;
type CreateVmInput = z.input<typeof CreateVmParams>;

export type RunOptions = ExecHandlers;

export const vmStore = new SandboxStore<VmRecord>({
  noun: "VM",
  idKind: "vm",
  idOf: (record) => record.vm_id,
  missingHint: "it may have been deleted or reached its ttl",
  endedError: "its supervisor process died",
  persistReconciled: false,
  endedFields: {},
  launch: { ttl_action: "delete" },
  startedFields: (record, now) => ({
    started_at: now,
    expires_at: expiresAt(now, record.ttl_seconds),
  }),
});

/** Creates, boots, runs in and tears down VMs. Never prints; throws PyroError. */
export class VmManager {
  private readonly progress: ProgressSink;
  private readonly sandboxes: Sandboxes<VmRecord>;

  constructor(runtime: SandboxRuntime = new SandboxRuntime()) {
    this.progress = runtime.progress;
    this.sandboxes = new Sandboxes(vmStore, runtime);
  }

  /** `pyro run`: boot a fresh VM, run one command, delete the VM on every path. */
  async run(input: RunParamsInput, handlers: RunOptions = {}): Promise<RunResultValue> {
    const params = parseParams(RunParams, input);
    const startedAt = performance.now();
    const record = await this.create(params, { owned: true });
    const emit = (phase: string, fields: Record<string, string> = {}) =>
      this.progress({
        scope: "run",
        phase,
        fields: { vm_id: record.vm_id, environment: params.environment, ...fields },
      });
    let client: ShimClient | undefined;
    try {
      emit("boot");
      const booted = await this.sandboxes.boot(record, { claim: true, cold: params.cold });
      client = booted.client;
      const agentReadyMs = performance.now() - startedAt;
      emit("exec", { boot_mode: booted.boot.boot_mode });
      const { timings, ...result } = await execThenDelete(client, params, handlers, () =>
        emit("teardown"),
      );
      client.destroy();
      client = undefined;
      return {
        vm_id: record.vm_id,
        ...result,
        environment: params.environment,
        acceleration: booted.acceleration,
        boot_mode: booted.boot.boot_mode,
        cold_reason: booted.boot.cold_reason,
        timings: {
          ...booted.boot.timings,
          agent_ready_ms: Math.round(agentReadyMs),
          ...timings,
        },
      };
    } finally {
      // Closing the owning connection makes the shim delete the VM; wait for that, then
      // make sure of it (a shim that crashed cannot clean up after itself).
      client?.destroy();
      await waitForRemoval(vmStore.dir(record.vm_id), 10_000);
      await this.sandboxes.destroy(record.vm_id);
    }
  }

  /** Validates, builds what the environment needs, and records a VM in state `created`. */
  async create(input: CreateVmInput, options: { owned?: boolean } = {}): Promise<VmRecord> {
    const params = parseParams(CreateVmParams, input);
    checkHostLimits(params.vcpu_count, params.mem_mib);
    refuseUnbuiltFeatures(params);
    await bootArtifacts(params.environment, this.progress);
    const now = new Date().toISOString();
    const record = await vmStore.create(
      {
        vm_id: vmStore.newId(),
        environment: params.environment,
        state: "created",
        vcpu_count: params.vcpu_count,
        mem_mib: params.mem_mib,
        ttl_seconds: params.ttl_seconds,
        network: params.network,
        created_at: now,
        started_at: null,
        expires_at: expiresAt(now, params.ttl_seconds),
        execution_mode: "guest",
        acceleration: null,
        error: null,
      },
      // Written before the record, so a VM whose maker dies at once is still reapable.
      async (dir) => {
        if (options.owned)
          await writeFile(vmFiles(dir).owner, String(process.pid), { mode: 0o600 });
      },
    );
    this.progress({
      scope: "run",
      phase: "create",
      fields: { vm_id: record.vm_id, environment: params.environment },
    });
    return record;
  }

  async start(input: z.input<typeof StartVmParams>): Promise<VmRecord> {
    const { vm_id, cold } = parseParams(StartVmParams, input);
    return this.sandboxes.start(
      vm_id,
      "run a command in it with vm_exec (SDK: execVm)",
      undefined,
      { cold },
    );
  }

  /** Runs one command in a started VM, then deletes the VM (CONTRACT.md `execVm`). */
  async exec(
    input: z.input<typeof ExecVmParams>,
    handlers: ExecHandlers = {},
  ): Promise<z.output<typeof ExecVmResult>> {
    const params = parseParams(ExecVmParams, input);
    const record = await vmStore.requireState(
      params.vm_id,
      "started",
      "start it with vm_start (SDK: startVm) first",
    );
    try {
      const { timings, ...result } = await this.sandboxes.withGuest(params.vm_id, (client) =>
        execThenDelete(client, params, handlers),
      );
      return {
        vm_id: record.vm_id,
        ...result,
        acceleration: record.acceleration ?? "tcg",
        timings,
      };
    } finally {
      // On success the shim already removed the VM; on failure this stops what is left.
      await this.sandboxes.destroy(params.vm_id);
    }
  }

  async stop(input: z.input<typeof VmIdParams>): Promise<VmRecord> {
    return this.sandboxes.stop(parseParams(VmIdParams, input).vm_id);
  }

  async delete(input: z.input<typeof VmIdParams>): Promise<{ vm_id: string; deleted: true }> {
    const { vm_id } = parseParams(VmIdParams, input);
    await this.sandboxes.delete(vm_id);
    return { vm_id, deleted: true };
  }

  /** The record, reconciled with the VM's processes: a dead shim means a failed VM. */
  async status(input: z.input<typeof VmIdParams>): Promise<VmRecord> {
    const { vm_id } = parseParams(VmIdParams, input);
    return vmStore.reconciled(vm_id);
  }

  /** Live from the shim while the VM runs; what the record says otherwise. */
  async networkInfo(input: z.input<typeof VmIdParams>): Promise<z.output<typeof NetworkInfo>> {
    const record = await this.status(input);
    const live =
      record.network && record.state === "started"
        ? await this.sandboxes
            .withGuest(record.vm_id, (client) => client.networkInfo())
            .then(networkStatus, () => undefined)
        : undefined;
    const status = live ?? noNetwork(record.network ? "egress" : "off");
    return {
      vm_id: record.vm_id,
      network: record.network,
      interfaces: record.network
        ? [{ name: "eth0", mode: "user", guest_ip: status.guest_address }]
        : [],
      ...status,
    };
  }

  /** Deletes VMs past their TTL and VMs whose supervisor died (with their VMM). */
  async reapExpired(): Promise<z.output<typeof ReapResult>> {
    const removed: z.output<typeof ReapResult>["removed"] = [];
    for (const vmId of await vmStore.ids()) {
      const dir = vmStore.dir(vmId);
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
      await this.sandboxes.destroy(vmId);
      removed.push({ vm_id: vmId, reason: expired ? "expired" : "orphaned" });
    }
    return { removed };
  }
}

/** Runs the one command of a one-shot VM, then has the shim delete the VM; times both. */
async function execThenDelete(
  client: ShimClient,
  params: { command: string[]; timeout_seconds: number },
  handlers: ExecHandlers,
  onTeardown: () => void = () => {},
) {
  const started = performance.now();
  const output = await client.exec(
    {
      argv: params.command,
      timeout_ms: params.timeout_seconds * 1000,
      max_output_bytes: LIMITS.max_output_bytes,
    },
    handlers,
  );
  const executed = performance.now();
  onTeardown();
  await client.stop(true);
  const timings = {
    exec_ms: Math.round(executed - started),
    teardown_ms: Math.round(performance.now() - executed),
  };
  return { ...commandResult(params.command, output), timings };
}

async function waitForRemoval(dir: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await liveState(dir)).shimAlive && !(await readRecord(dir))) return;
    await sleep(20);
  }
}
