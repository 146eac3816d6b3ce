import {
  REPLY_GRACE_MS,
  requestBounds,
  timedOutExit,
  type DeadlinePolicy,
  type RequestBounds,
} from "../guest/bounds.js";
import { FrameType, type Frame } from "../guest/frame.js";
import type { AgentMux } from "./agent-mux.js";

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
    private readonly mux: AgentMux,
    private readonly message: Record<string, unknown>,
    private readonly sink: ForwardSink,
    private readonly deadlines: DeadlinePolicy,
    private readonly onSettled: () => void,
  ) {
    this.bounds = requestBounds(message, deadlines);
    this.agentChannel = mux.open((frame, control) =>
      control ? this.finish(this.withTruncation(control)) : this.output(frame),
    );
    this.deadline = setTimeout(() => this.expire(), this.bounds.deadlineMs);
    mux.sendControl(this.agentChannel, message);
  }

  /** The client went away: the command dies, and the request ends when the guest says so. */
  kill(): void {
    if (!this.settled && this.message.op === "exec") this.signalKill();
  }

  private output(frame: Frame): void {
    const stream: Stream | undefined =
      frame.type === FrameType.stdout
        ? "stdout"
        : frame.type === FrameType.stderr
          ? "stderr"
          : undefined;
    if (!stream || this.settled) return;
    const cap = stream === "stdout" ? this.bounds.stdoutCap : this.bounds.stderrCap;
    const room = Math.max(cap - this.seen[stream], 0);
    this.seen[stream] += frame.payload.length;
    if (frame.payload.length > room) this.dropped[stream] = true;
    const kept = frame.payload.length > room ? frame.payload.subarray(0, room) : frame.payload;
    if (kept.length) this.sink.output(frame.type, kept);
  }

  /** The guest's own record, marked truncated where the shim dropped output. */
  private withTruncation(message: Record<string, unknown>): Record<string, unknown> {
    if (message.type === "exit") {
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
    this.mux.abandon(this.agentChannel);
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
    this.mux
      .request(
        { op: "signal", target_channel: this.agentChannel, signal: "KILL" },
        this.deadlines.graceMs ?? REPLY_GRACE_MS,
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
