import { z } from "zod";
import { PyroError } from "../contract/errors.js";
import { parseFromGuest, type ChannelClient } from "../guest/client.js";
import { FrameType } from "../guest/frame.js";

/**
 * The agent's service ops (protocol/README.md, Services) as the service manager needs
 * them. Every reply comes from the untrusted guest: parsed with bounds, never cast.
 */

const signalName = z
  .string()
  .max(16)
  .regex(/^[A-Z0-9]+$/)
  .nullable();

const StartReply = z.object({
  type: z.literal("result"),
  name: z.string().max(64),
  pid: z.number().int().positive(),
  started_at_ms: z.number().int().nonnegative(),
});

export const AgentServiceEntry = z.object({
  name: z.string().max(64),
  pid: z.number().int().positive(),
  state: z.enum(["running", "exited"]),
  exit_code: z.number().int().min(0).max(255).nullable(),
  signal: signalName,
  started_at_ms: z.number().int().nonnegative(),
  ended_at_ms: z.number().int().nonnegative().nullable(),
});
export type AgentService = z.infer<typeof AgentServiceEntry>;

const ListReply = z.object({
  type: z.literal("result"),
  services: z.array(AgentServiceEntry).max(64),
});

const StopReply = z.object({
  type: z.literal("result"),
  name: z.string().max(64),
  state: z.literal("exited"),
  exit_code: z.number().int().min(0).max(255).nullable(),
  signal: signalName,
  killed: z.boolean(),
});
export type AgentStopped = z.infer<typeof StopReply>;

const LogsReply = z.object({
  type: z.literal("result"),
  name: z.string().max(64),
  stdout_truncated: z.boolean(),
  stderr_truncated: z.boolean(),
});

/** Bytes of each log stream asked for; lines beyond it are cut from the old end. */
export const LOG_TAIL_MAX_BYTES = 1 << 20;

export interface ServiceLogs {
  stdout: string;
  stderr: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
}

export interface ProbeResult {
  exit_code: number | null;
  output: string;
}

export interface StartRequest {
  name: string;
  argv: string[];
  cwd: string;
  env?: Record<string, string>;
}

/** What the service manager asks of a workspace's guest. */
export interface ServiceAgent {
  start(request: StartRequest): Promise<{ pid: number; started_at_ms: number }>;
  list(): Promise<AgentService[]>;
  stop(name: string, graceMs?: number): Promise<AgentStopped>;
  logs(name: string, tailLines: number): Promise<ServiceLogs>;
  /** One readiness check: a short command whose exit status is the answer. */
  probe(argv: string[], cwd: string, timeoutMs: number): Promise<ProbeResult>;
}

const PROBE_OUTPUT_BYTES = 4096;

/** The real thing: requests over a connection to the workspace's shim. */
export function channelServiceAgent(client: ChannelClient): ServiceAgent {
  return {
    async start(request) {
      const reply = parseFromGuest(
        StartReply,
        await client.request({ op: "service_start", ...request }),
      );
      return { pid: reply.pid, started_at_ms: reply.started_at_ms };
    },
    async list() {
      return parseFromGuest(ListReply, await client.request({ op: "service_list" })).services;
    },
    async stop(name, graceMs) {
      const message = {
        op: "service_stop",
        name,
        ...(graceMs === undefined ? {} : { grace_ms: graceMs }),
      };
      return parseFromGuest(StopReply, await client.request(message));
    },
    async logs(name, tailLines) {
      const chunks = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
      const size = { stdout: 0, stderr: 0 };
      const onData = (type: number, payload: Buffer) => {
        const stream =
          type === FrameType.stdout ? "stdout" : type === FrameType.stderr ? "stderr" : undefined;
        if (!stream) return;
        size[stream] += payload.length;
        if (size[stream] <= LOG_TAIL_MAX_BYTES) chunks[stream].push(payload);
      };
      const reply = parseFromGuest(
        LogsReply,
        await client.request(
          { op: "service_logs", name, tail_lines: tailLines, max_bytes: LOG_TAIL_MAX_BYTES },
          { onData },
        ),
      );
      if (size.stdout > LOG_TAIL_MAX_BYTES || size.stderr > LOG_TAIL_MAX_BYTES) {
        throw new PyroError("guest_error", "the guest sent more service log than asked for");
      }
      return {
        stdout: Buffer.concat(chunks.stdout).toString("utf8"),
        stderr: Buffer.concat(chunks.stderr).toString("utf8"),
        stdout_truncated: reply.stdout_truncated,
        stderr_truncated: reply.stderr_truncated,
      };
    },
    async probe(argv, cwd, timeoutMs) {
      const result = await client.exec({
        argv,
        cwd,
        timeout_ms: timeoutMs,
        max_output_bytes: PROBE_OUTPUT_BYTES,
      });
      const output = Buffer.concat([result.stderr, result.stdout]).toString("utf8").trim();
      return {
        exit_code: result.timed_out ? null : result.exit_code,
        output: result.timed_out ? `no answer within ${timeoutMs} ms` : output,
      };
    },
  };
}
