import { z } from "zod";
import { command, exitCode, pid, port } from "./fields.js";
import { ActivePublishedPort } from "./network.js";
import { changes, defineOperation, readOnly } from "./operation.js";
import { NAME_PATTERN, WorkspaceIdParams } from "./workspace.js";

export { ActivePublishedPort };

/** Service operations (CONTRACT.md `workspace service ...`): named long-running processes. */

const workspaceId = WorkspaceIdParams.shape.workspace_id;
export const serviceName = z
  .string()
  .regex(NAME_PATTERN, `service names must match ${NAME_PATTERN.source}`)
  .describe('Service name, unique among the workspace\'s running services, e.g. "web".');

/** Bounds of the readiness wait; the interval bounds how hard pyro polls the guest. */
export const SERVICE_LIMITS = {
  max_ready_timeout_seconds: 3600,
  min_ready_interval_ms: 50,
  max_ready_interval_ms: 60_000,
  max_tail_lines: 100_000,
} as const;

const isPort = (text: string) => /^\d+$/.test(text) && Number(text) >= 1 && Number(text) <= 65535;

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.hostname !== "" && (url.port === "" || isPort(url.port));
  } catch {
    return false;
  }
}

export const Readiness = z
  .discriminatedUnion("type", [
    z.object({
      type: z.literal("file"),
      path: z.string().min(1).describe("Ready once this guest path exists."),
    }),
    z.object({
      type: z.literal("tcp"),
      address: z
        .string()
        .regex(/^[A-Za-z0-9.:[\]-]+:\d{1,5}$/, "tcp readiness needs HOST:PORT, e.g. 127.0.0.1:8000")
        .refine((address) => isPort(address.slice(address.lastIndexOf(":") + 1)), {
          message: "tcp readiness needs a port from 1 to 65535",
        })
        .describe("Ready once a TCP connection to HOST:PORT (in the guest) succeeds."),
    }),
    z.object({
      type: z.literal("http"),
      url: z
        .string()
        .regex(/^http:\/\/[^\s/]+(\/\S*)?$/, "http readiness needs an http:// URL")
        // The host builds the request from the parsed URL after the service started: a
        // URL it cannot parse must be refused here, not leave a service behind.
        .refine(isHttpUrl, "http readiness needs a valid url with a port from 1 to 65535")
        .describe("Ready once a GET of this http:// URL (in the guest) answers 2xx or 3xx."),
    }),
    z.object({
      type: z.literal("command"),
      command: z
        .string()
        .min(1)
        .max(4096)
        .describe("Ready once this shell command (sh -c) exits 0 in the guest."),
    }),
  ])
  .describe("How pyro tells the service is ready; without it, ready as soon as it started.");

export const PublishedPort = z.object({
  guest_port: port(),
  host_port: port().optional(),
});

export const StartServiceParams = z.object({
  workspace_id: workspaceId,
  service_name: serviceName,
  command,
  cwd: z
    .string()
    .default("/workspace")
    .describe("Working directory, relative to /workspace or absolute under it."),
  readiness: Readiness.optional(),
  ready_timeout_seconds: z
    .number()
    .int()
    .min(1)
    .max(SERVICE_LIMITS.max_ready_timeout_seconds)
    .default(30)
    .describe("Give up (and stop the service) when it is not ready after this many seconds."),
  ready_interval_ms: z
    .number()
    .int()
    .min(SERVICE_LIMITS.min_ready_interval_ms)
    .max(SERVICE_LIMITS.max_ready_interval_ms)
    .default(500)
    .describe("Time between readiness checks, in milliseconds."),
  secret_env: z
    .record(z.string(), z.string())
    .default({})
    .describe("Environment variables to fill from secrets: {ENV_VAR: SECRET_NAME}."),
  published_ports: z
    .array(PublishedPort)
    .default([])
    .describe("Guest ports to publish on the host's 127.0.0.1 (needs egress+published-ports)."),
});

export const ServiceState = z
  .enum(["starting", "running", "exited", "stopped"])
  .describe(
    "starting: waiting for readiness; running; exited: ended by itself; stopped: ended by pyro (see stop_reason).",
  );

export const ServiceRecord = z.object({
  workspace_id: z.string(),
  service_name: z.string(),
  state: ServiceState,
  command: z.array(z.string()),
  cwd: z.string(),
  started_at: z.string(),
  ready_at: z.string().nullable(),
  ended_at: z.string().nullable(),
  exit_code: exitCode().nullable().describe("Null while running or when ended by a signal."),
  signal: z.string().nullable().describe('The signal that ended it, e.g. "TERM" or "KILL".'),
  pid: pid().nullable().describe("Its process id in the guest."),
  readiness: Readiness.nullable(),
  stop_reason: z
    .string()
    .nullable()
    .describe("Why pyro stopped it: stop requested, readiness failed, workspace stop/reset..."),
  published_ports: z
    .array(ActivePublishedPort)
    .describe("Host ports forwarded to the service while it runs; removed when it stops."),
});

export const ServiceParams = z.object({ workspace_id: workspaceId, service_name: serviceName });
const op = defineOperation;
const SERVICE_ERRORS = [
  "invalid_argument",
  "not_found",
  "conflict",
  "busy",
  "timeout",
  "unavailable",
  "unsupported",
  "guest_error",
  "internal",
] as const;
/** logs and stop: what can go wrong with one named service that already exists. */
const ONE_SERVICE_ERRORS = [
  "invalid_argument",
  "not_found",
  "conflict",
  "unavailable",
  "unsupported",
  "guest_error",
  "internal",
] as const;

export const startService = op({
  sdkMethod: "startService",
  mcpTool: "service_start",
  cliCommand: "workspace service start",
  annotations: changes("Start a service", {
    destructive: true,
    idempotent: false,
    openWorld: true,
  }),
  description:
    "Start a named long-running process (a dev server, a database) in a started workspace and wait until it is ready. Use it instead of workspace_exec for anything that must keep running.",
  params: StartServiceParams,
  result: ServiceRecord,
  errors: SERVICE_ERRORS,
});

export const listServices = op({
  sdkMethod: "listServices",
  mcpTool: "service_list",
  cliCommand: "workspace service list",
  annotations: readOnly("List services"),
  description: "List a workspace's services with their state and exit codes.",
  params: z.object({ workspace_id: workspaceId }),
  result: z.object({ workspace_id: z.string(), services: z.array(ServiceRecord) }),
  errors: ["not_found", "unavailable", "unsupported", "guest_error", "internal"],
});

export const statusService = op({
  sdkMethod: "statusService",
  mcpTool: "service_status",
  cliCommand: "workspace service status",
  annotations: readOnly("Service status"),
  description: "Show one service's state, pid, readiness and exit code.",
  params: ServiceParams,
  result: ServiceRecord,
  errors: [
    "invalid_argument",
    "not_found",
    "unavailable",
    "unsupported",
    "guest_error",
    "internal",
  ],
});

export const logsService = op({
  sdkMethod: "logsService",
  mcpTool: "service_logs",
  cliCommand: "workspace service logs",
  annotations: readOnly("Service logs"),
  description: "Read the last lines of a service's stdout and stderr.",
  params: ServiceParams.extend({
    tail_lines: z
      .number()
      .int()
      .min(1)
      .max(SERVICE_LIMITS.max_tail_lines)
      .default(200)
      .describe("Lines to return from the end of each stream."),
  }),
  result: z.object({
    workspace_id: z.string(),
    service_name: z.string(),
    state: ServiceState,
    stdout: z.string(),
    stderr: z.string(),
    stdout_truncated: z.boolean().describe("Older output exists that was not returned."),
    stderr_truncated: z.boolean(),
  }),
  errors: ONE_SERVICE_ERRORS,
});

export const stopService = op({
  sdkMethod: "stopService",
  mcpTool: "service_stop",
  cliCommand: "workspace service stop",
  annotations: changes("Stop a service", { destructive: true, idempotent: true, openWorld: false }),
  description:
    "Stop a service: TERM to its process group, then KILL when it has not ended after a grace period.",
  params: ServiceParams,
  result: ServiceRecord,
  errors: ONE_SERVICE_ERRORS,
});

export type ServiceRecordValue = z.output<typeof ServiceRecord>;
export type ReadinessValue = z.output<typeof Readiness>;
export type StartServiceParamsValue = z.output<typeof StartServiceParams>;
