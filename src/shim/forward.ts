import type { PyroError } from "../contract/errors.js";
import {
  REPLY_GRACE_MS,
  requestBounds,
  timedOutExit,
  type DeadlinePolicy,
  type RequestBounds,
} from "../guest/bounds.js";
import type { ChannelClient } from "../guest/client.js";
import { FrameType } from "../guest/frame.js";
import { AGENT_OPS } from "../guest/ops/index.js";

/** Where a forwarded request's output and end go (the client's connection). */
export interface ForwardSink {
  output(type: number, payload: Buffer): void;
  end(message: Record<string, unknown>): void;
}

type Stream = "stdout" | "stderr";

/**
 * One client request in flight to the agent, bounded by the shim whatever the guest does
 * (issue 7, defects 5 and 6): output past the request's own cap is dropped here, and a
 * guest that has not ended the request by its deadline gets its process group killed
 * while the client gets a timeout.
 */
export class ForwardedRequest {
  readonly agentChannel: number;
  private readonly bounds: RequestBounds;
  private readonly started = performance.now();
  private readonly seen = { stdout: 0, stderr: 0 };
  private readonly dropped = { stdout: false, stderr: false };
  private readonly deadline: NodeJS.Timeout;
  private settled = false;

  constructor(
    private readonly agent: ChannelClient,
    private readonly message: Record<string, unknown>,
    private readonly sink: ForwardSink,
    private readonly deadlines: DeadlinePolicy,
    private readonly onSettled: () => void,
  ) {
    this.bounds = requestBounds(message, deadlines);
    this.agentChannel = agent.mux.open({
      data: (type, payload) => this.output(type, payload),
      end: (reply) => this.finish(this.withTruncation(reply)),
      fail: (error) => this.lost(error),
    });
    this.deadline = setTimeout(() => this.expire(), this.bounds.deadlineMs);
    agent.mux.sendControl(this.agentChannel, message);
  }

  /** The client went away: the command dies, and the request ends when the guest says so. */
  kill(): void {
    if (!this.settled && this.message.op === "exec") this.signalKill();
  }

  private output(type: number, payload: Buffer): void {
    const stream: Stream | undefined =
      type === FrameType.stdout ? "stdout" : type === FrameType.stderr ? "stderr" : undefined;
    if (!stream || this.settled) return;
    const cap = stream === "stdout" ? this.bounds.stdoutCap : this.bounds.stderrCap;
    const room = Math.max(cap - this.seen[stream], 0);
    this.seen[stream] += payload.length;
    if (payload.length > room) this.dropped[stream] = true;
    const kept = payload.length > room ? payload.subarray(0, room) : payload;
    if (kept.length) this.sink.output(type, kept);
  }

  /** The agent connection broke: the client hears it now rather than at the deadline. */
  private lost(error: PyroError): void {
    this.finish({
      type: "error",
      code: "unavailable",
      message: `lost the guest agent (${error.message}); the VM is going down`,
    });
  }

  /**
   * The guest's own record, marked truncated where the shim dropped output: per stream
   * where the record has per-stream flags (`exit`, `service_logs`), else as `truncated`.
   */
  private withTruncation(message: Record<string, unknown>): Record<string, unknown> {
    if (message.type === "exit" || typeof message.stdout_truncated === "boolean") {
      return {
        ...message,
        ...(this.dropped.stdout ? { stdout_truncated: true } : {}),
        ...(this.dropped.stderr ? { stderr_truncated: true } : {}),
      };
    }
    if (message.type === "result" && this.dropped.stdout) return { ...message, truncated: true };
    return message;
  }

  private expire(): void {
    if (this.settled) return;
    this.agent.mux.abandon(this.agentChannel);
    if (this.message.op !== "exec") {
      const op = String(this.message.op).slice(0, 40);
      const seconds = Math.round(this.bounds.deadlineMs / 1000);
      return this.finish({
        type: "error",
        code: "timeout",
        message: `the guest did not answer ${op} within ${seconds} s; the VM may be stuck: stop and start it (or delete it)`,
      });
    }
    this.signalKill();
    this.finish({
      ...timedOutExit(performance.now() - this.started, {
        stdout_bytes: this.seen.stdout,
        stderr_bytes: this.seen.stderr,
      }),
      stdout_truncated: this.dropped.stdout,
      stderr_truncated: this.dropped.stderr,
    });
  }

  private signalKill(): void {
    this.agent
      .request(
        AGENT_OPS.signal,
        { target_channel: this.agentChannel, signal: "KILL" },
        { deadlineMs: this.deadlines.graceMs ?? REPLY_GRACE_MS },
      )
      .catch(() => {});
  }

  private finish(message: Record<string, unknown>): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.deadline);
    this.sink.end(message);
    this.onSettled();
  }
}
