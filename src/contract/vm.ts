import { z } from "zod";
import { DEFAULTS, LIMITS } from "./defaults.js";
import { defineOperation } from "./operation.js";

const environment = z
  .string()
  .min(1)
  .describe('Environment name, e.g. "debian:12" (see `pyro env list`).');
const command = z
  .array(z.string())
  .min(1, "command needs at least one element: the program to run")
  .describe('Program and arguments (argv), e.g. ["git", "--version"]. No shell is implied.');
const vcpuCount = z
  .number()
  .int()
  .min(1)
  .default(DEFAULTS.vcpu_count)
  .describe("Virtual CPUs, 1 up to the host's core count.");
const memMib = z
  .number()
  .int()
  .min(LIMITS.min_mem_mib)
  .default(DEFAULTS.mem_mib)
  .describe(`Guest memory in MiB, at least ${LIMITS.min_mem_mib}.`);
const timeoutSeconds = z
  .number()
  .int()
  .positive()
  .max(LIMITS.max_timeout_seconds)
  .default(DEFAULTS.timeout_seconds)
  .describe("Kill the command (its whole process group) after this many seconds.");
const ttlSeconds = z
  .number()
  .int()
  .positive()
  .max(LIMITS.max_ttl_seconds)
  .default(DEFAULTS.ttl_seconds)
  .describe("The VM is destroyed this many seconds after it starts, whatever happens.");

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
});

export const Timings = z.object({
  vmm_start_ms: z.number().describe("Launching the VMM until it was controllable."),
  boot_ms: z.number().describe("Guest kernel and init until the agent answered."),
  agent_ready_ms: z.number().describe("From the start request until the agent answered."),
  exec_ms: z.number().describe("The command's round trip through the agent."),
  teardown_ms: z.number().describe("Powering off and removing the VM."),
});

export const ExecutionMode = z.enum(["guest", "host_compat"]);
export const AccelerationMode = z.enum(["kvm", "tcg"]);

export const RunResult = z.object({
  vm_id: z.string(),
  environment: z.string(),
  command: z.array(z.string()),
  exit_code: z.number().int().describe("The command's exit status; 124 when it timed out."),
  stdout: z.string(),
  stderr: z.string(),
  duration_ms: z.number().describe("Wall time of the command inside the guest."),
  timed_out: z.boolean(),
  stdout_truncated: z.boolean(),
  stderr_truncated: z.boolean(),
  execution_mode: ExecutionMode,
  acceleration: AccelerationMode,
  timings: Timings,
});

export type RunParamsInput = z.input<typeof RunParams>;
export type RunParamsValue = z.output<typeof RunParams>;
export type RunResultValue = z.output<typeof RunResult>;

export const runInVm = defineOperation({
  sdkMethod: "runInVm",
  mcpTool: "vm_run",
  cliCommand: "run",
  description:
    "Run one command in a fresh, isolated microVM and return its exit code and output. Use it for one-shot commands; the VM is deleted afterwards.",
  params: RunParams,
  result: RunResult,
  errors: ["invalid_argument", "not_found", "unavailable", "timeout", "guest_error", "internal"],
});
