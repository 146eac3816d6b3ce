import type { ChannelClient } from "../guest/client.js";
import { AGENT_OPS, SHIM_OPS, type ShimPublishedPort } from "../guest/ops/index.js";
import type { ServiceEntry } from "../guest/ops/services.js";

/**
 * The agent's service ops (protocol/README.md, Services) as the service manager needs
 * them; replies are parsed by the ops' schemas in `guest/ops/services.ts`.
 */

export type AgentService = ServiceEntry;

export interface AgentStopped {
  exit_code: number | null;
  signal: string | null;
  /** KILL was needed. */
  killed: boolean;
}

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
  /** Forwards the host's 127.0.0.1:hostPort (null: a free port) to a guest port (the shim). */
  publish(guestPort: number, hostPort: number | null): Promise<ShimPublishedPort>;
  unpublish(hostPort: number): Promise<void>;
}

const PROBE_OUTPUT_BYTES = 4096;

/** The real thing: requests over a connection to the workspace's shim. */
export function channelServiceAgent(client: ChannelClient): ServiceAgent {
  return {
    async start(request) {
      const reply = await client.request(AGENT_OPS.service_start, request);
      return { pid: reply.pid, started_at_ms: reply.started_at_ms };
    },
    async list() {
      return (await client.request(AGENT_OPS.service_list, {})).services;
    },
    async stop(name, graceMs) {
      const reply = await client.request(AGENT_OPS.service_stop, {
        name,
        ...(graceMs === undefined ? {} : { grace_ms: graceMs }),
      });
      return { exit_code: reply.exit_code, signal: reply.signal, killed: reply.killed };
    },
    async logs(name, tailLines) {
      const { result, stdout, stderr, stdout_dropped, stderr_dropped } =
        await client.requestWithOutput(AGENT_OPS.service_logs, {
          name,
          tail_lines: tailLines,
          max_bytes: LOG_TAIL_MAX_BYTES,
        });
      return {
        stdout: stdout.toString("utf8"),
        stderr: stderr.toString("utf8"),
        stdout_truncated: result.stdout_truncated || stdout_dropped,
        stderr_truncated: result.stderr_truncated || stderr_dropped,
      };
    },
    async publish(guestPort, hostPort) {
      const reply = await client.request(SHIM_OPS.publish_port, {
        guest_port: guestPort,
        host_port: hostPort,
      });
      return {
        guest_port: reply.guest_port,
        host_port: reply.host_port,
        host_address: reply.host_address,
      };
    },
    async unpublish(hostPort) {
      await client.request(SHIM_OPS.unpublish_port, { host_port: hostPort });
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
