import { z } from "zod";
import { LIMITS } from "./defaults.js";
import {
  command,
  environment,
  exitCode,
  integer,
  memMib,
  timeoutSeconds,
  cold,
  ttlSeconds,
  vcpuCount,
} from "./fields.js";
import { NetworkStatus } from "./network.js";
import { changes, defineOperation, readOnly } from "./operation.js";

export const RunParams = z.object({
  environment,
  command,
  vcpu_count: vcpuCount,
  mem_mib: memMib,
  timeout_seconds: timeoutSeconds,
  ttl_seconds: ttlSeconds,
  network: z.boolean().default(false).describe("Give the VM outbound network access."),
  allow_host_compat: z
    .boolean()
    .default(false)
    .describe("Allow running on the host without a VM when no VM can boot."),
  cold,
});

export const Timings = z.object({
  template_ms: z
    .number()
    .describe("Finding the memory template, building it on first use, copying it for this VM."),
  vmm_start_ms: z
    .number()
    .describe("Launching the VMM until it was controllable (a warm boot: and restored)."),
  restore_ms: z.number().describe("Restoring the memory template; 0 for a cold boot."),
  boot_ms: z
    .number()
    .describe("Guest kernel and init (warm: the resumed guest) until the agent answered."),
  agent_ready_ms: z.number().describe("From the start request until the agent answered."),
  exec_ms: z.number().describe("The command's round trip through the agent."),
  teardown_ms: z.number().describe("Powering off and removing the VM."),
});

/** How the last boot went (the record) or this one (a run). */
export const BootFields = {
  boot_mode: z
    .enum(["cold", "warm"])
    .describe("warm: restored from a memory template of the environment; cold: a full boot."),
  cold_reason: z
    .string()
    .nullable()
    .describe(
      "Why the boot was cold (asked for, no template for this VMM, a template problem); null when warm.",
    ),
};

/** What vm_start, workspace_create and workspace_start report about the boot they did. */
export const BootTimings = Timings.pick({
  template_ms: true,
  vmm_start_ms: true,
  restore_ms: true,
  boot_ms: true,
});

/**
 * The boot fields of a record: absent until its first boot (and in records written by
 * a pyro before memory templates).
 */
export function bootRecordFields() {
  return {
    boot_mode: BootFields.boot_mode.optional(),
    cold_reason: BootFields.cold_reason.optional(),
    timings: BootTimings.optional().describe("How long the last boot took, by part."),
  };
}

export const ExecutionMode = z.enum(["guest", "host_compat"]);
export const AccelerationMode = z.enum(["kvm", "tcg"]);

export const RunResult = z.object({
  vm_id: z.string(),
  environment: z.string(),
  command: z.array(z.string()),
  exit_code: exitCode().describe("The command's exit status; 124 when it timed out."),
  stdout: z.string(),
  stderr: z.string(),
  duration_ms: z.number().describe("Wall time of the command inside the guest."),
  timed_out: z.boolean(),
  stdout_truncated: z.boolean(),
  stderr_truncated: z.boolean(),
  execution_mode: ExecutionMode,
  acceleration: AccelerationMode,
  ...BootFields,
  timings: Timings,
});

export type RunParamsInput = z.input<typeof RunParams>;
export type RunParamsValue = z.output<typeof RunParams>;
export type RunResultValue = z.output<typeof RunResult>;

export const runInVm = defineOperation({
  sdkMethod: "runInVm",
  mcpTool: "vm_run",
  cliCommand: "run",
  annotations: changes("Run a command in a fresh VM", {
    destructive: false,
    idempotent: false,
    openWorld: true,
  }),
  description:
    "Run one command in a fresh, isolated microVM and return its exit code and output. Use it for one-shot commands; the VM is deleted afterwards.",
  params: RunParams,
  result: RunResult,
  errors: ["invalid_argument", "not_found", "unavailable", "timeout", "guest_error", "internal"],
});

export const VmState = z.enum(["created", "started", "stopped", "failed"]);

export const VmRecord = z.object({
  vm_id: z.string(),
  environment: z.string(),
  state: VmState,
  vcpu_count: integer(1),
  mem_mib: integer(LIMITS.min_mem_mib),
  ttl_seconds: integer(1, LIMITS.max_ttl_seconds),
  network: z.boolean(),
  created_at: z.string().describe("ISO 8601."),
  started_at: z.string().nullable(),
  expires_at: z.string().describe("When the VM is destroyed (creation or last start + ttl)."),
  execution_mode: ExecutionMode,
  acceleration: AccelerationMode.nullable().describe("Set once the VM has been started."),
  error: z.string().nullable().describe("Why the VM failed, when state is failed."),
  ...bootRecordFields(),
});

const vmId = z.string().min(1).describe('The VM id returned by vm_create, e.g. "vm_0123456789ab".');
export const VmIdParams = z.object({ vm_id: vmId });
export const StartVmParams = VmIdParams.extend({ cold });

export const CreateVmParams = RunParams.pick({
  environment: true,
  vcpu_count: true,
  mem_mib: true,
  ttl_seconds: true,
  network: true,
  allow_host_compat: true,
});

export const ExecVmParams = z.object({ vm_id: vmId, command, timeout_seconds: timeoutSeconds });
export const ExecVmResult = RunResult.omit({
  environment: true,
  timings: true,
  boot_mode: true,
  cold_reason: true,
}).extend({
  timings: Timings.pick({ exec_ms: true, teardown_ms: true }),
});

export const NetworkInfo = NetworkStatus.extend({
  vm_id: z.string(),
  network: z.boolean().describe("Whether the VM has a network interface at all."),
  interfaces: z.array(
    z.object({
      name: z.string(),
      mode: z.string().describe('"user" (QEMU user networking behind pyro\'s guard).'),
      guest_ip: z.string().nullable(),
    }),
  ),
});

export const ReapResult = z.object({
  removed: z.array(
    z.object({ vm_id: z.string(), reason: z.enum(["expired", "orphaned", "failed"]) }),
  ),
});

export const createVm = defineOperation({
  sdkMethod: "createVm",
  mcpTool: "vm_create",
  cliCommand: undefined,
  annotations: changes("Create a VM", { destructive: false, idempotent: false, openWorld: true }),
  description:
    "Create a VM without starting it. Use vm_run instead unless you need to inspect or start the VM separately before running one command.",
  params: CreateVmParams,
  result: VmRecord,
  errors: ["invalid_argument", "not_found", "unavailable", "internal"],
});

export const startVm = defineOperation({
  sdkMethod: "startVm",
  mcpTool: "vm_start",
  cliCommand: undefined,
  annotations: changes("Start a VM", { destructive: false, idempotent: true, openWorld: true }),
  description: "Boot a created or stopped VM and wait until it is ready for vm_exec.",
  params: StartVmParams,
  result: VmRecord,
  errors: ["not_found", "conflict", "unavailable", "internal"],
});

export const execVm = defineOperation({
  sdkMethod: "execVm",
  mcpTool: "vm_exec",
  cliCommand: undefined,
  annotations: changes("Run a command in a VM, then delete it", {
    destructive: true,
    idempotent: false,
    openWorld: true,
  }),
  description:
    "Run one command in a started VM and then delete the VM. Use it as the last step of vm_create and vm_start.",
  params: ExecVmParams,
  result: ExecVmResult,
  errors: ["invalid_argument", "not_found", "conflict", "guest_error", "internal"],
});

export const stopVm = defineOperation({
  sdkMethod: "stopVm",
  mcpTool: "vm_stop",
  cliCommand: undefined,
  annotations: changes("Stop a VM", { destructive: true, idempotent: true, openWorld: false }),
  description: "Power a started VM off, keeping it so vm_start can boot it again.",
  params: VmIdParams,
  result: VmRecord,
  errors: ["not_found", "conflict", "internal"],
});

export const deleteVm = defineOperation({
  sdkMethod: "deleteVm",
  mcpTool: "vm_delete",
  cliCommand: undefined,
  annotations: changes("Delete a VM", { destructive: true, idempotent: true, openWorld: false }),
  description: "Delete a VM in any state, powering it off first if it is running.",
  params: VmIdParams,
  result: z.object({ vm_id: z.string(), deleted: z.literal(true) }),
  errors: ["not_found", "internal"],
});

export const statusVm = defineOperation({
  sdkMethod: "statusVm",
  mcpTool: "vm_status",
  cliCommand: undefined,
  annotations: readOnly("VM status"),
  description: "Show a VM's state, checked against its processes, and when it expires.",
  params: VmIdParams,
  result: VmRecord,
  errors: ["not_found", "internal"],
});

export const networkInfoVm = defineOperation({
  sdkMethod: "networkInfoVm",
  mcpTool: "vm_network_info",
  cliCommand: undefined,
  annotations: readOnly("VM network info"),
  description: "Show what network a VM has: none unless it was created with network access.",
  params: VmIdParams,
  result: NetworkInfo,
  errors: ["not_found", "internal"],
});

export const reapExpired = defineOperation({
  sdkMethod: "reapExpired",
  mcpTool: "vm_reap_expired",
  cliCommand: undefined,
  annotations: changes("Delete expired VMs", {
    destructive: true,
    idempotent: true,
    openWorld: false,
  }),
  description:
    "Delete VMs whose time to live has passed or whose supervisor died, and list what was removed.",
  params: z.object({}),
  result: ReapResult,
  errors: ["internal"],
});
