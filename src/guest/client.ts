import type { Socket } from "node:net";
import { ZodError, type ZodType } from "zod";
import { PyroError } from "../contract/errors.js";
import { REPLY_GRACE_MS, requestBounds, timedOutExit, type DeadlinePolicy } from "./bounds.js";
import { agentError } from "./errors.js";
import { FrameType } from "./frame.js";
import { ChannelMux } from "./mux.js";
import {
  AGENT_OPS,
  Op,
  type AnyOp,
  type ExecRequest,
  type ExitRecord,
  type HelloResult,
  type OpRequest,
  type OpResult,
} from "./ops/index.js";
import { BoundedBuffer } from "./output.js";

export { agentError } from "./errors.js";

export interface ExecOutput extends ExitRecord {
  stdout: Buffer;
  stderr: Buffer;
}

export interface ExecHandlers {
  /** Aborting kills the command's whole process group (MCP `notifications/cancelled`). */
  signal?: AbortSignal;
  /** Keep the output in the result. Off for bulk streams (archives) a handler consumes. @default true */
  collectOutput?: boolean;
  /** Streamed output as it arrives (already bounded by `max_output_bytes`). */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
}

export interface ChannelClientOptions {
  /**
   * Time past a request's own timeout before this client gives up on its reply. Longer
   * than the shim's grace, so that a shim's timeout answer arrives first.
   * @default 25000
   */
  replyGraceMs?: number;
  /** Deadline of requests without a timeout of their own. @default 300000 */
  defaultDeadlineMs?: number;
}

export interface RequestOptions {
  /** `stdout` / `stderr` frames of the request's channel. */
  onData?: (type: number, payload: Buffer) => void;
  /** Sent as stdin frames on the request's channel, then stdin_eof. */
  stdin?: Buffer | AsyncIterable<Buffer>;
  onChannel?: (channel: number) => void;
  /** The terminal message to resolve with at the deadline; without it the call fails. */
  onDeadline?: (channel: number) => Record<string, unknown>;
  /** Replaces the deadline the request's op gives it (`bounds.ts`). */
  deadlineMs?: number;
}

/** A request's output, kept within the caps its op gives it (`ops/`). */
export interface CollectedOutput<R> {
  result: R;
  stdout: Buffer;
  stderr: Buffer;
  /** The host dropped bytes past the cap (the guest's own flags are in `result`). */
  stdout_dropped: boolean;
  stderr_dropped: boolean;
}

const STDIN_CHUNK_BYTES = 256 * 1024;
const CLIENT_EXTRA_GRACE_MS = 5_000;

/**
 * Speaks the framed protocol over one connection: to the agent (from the shim, or from a
 * test) or to a shim (from any client). Each request gets its own channel on the shared
 * `ChannelMux` and ends with one terminal frame, which is parsed with its op's schema.
 */
export class ChannelClient {
  readonly mux: ChannelMux;
  private readonly deadlines: DeadlinePolicy;

  constructor(connection: Socket | ChannelMux, options: ChannelClientOptions = {}) {
    this.mux = connection instanceof ChannelMux ? connection : new ChannelMux(connection);
    this.deadlines = {
      graceMs: options.replyGraceMs ?? REPLY_GRACE_MS + CLIENT_EXTRA_GRACE_MS,
      ...(options.defaultDeadlineMs ? { defaultDeadlineMs: options.defaultDeadlineMs } : {}),
    };
  }

  /**
   * Sends one request and resolves with its terminal frame, parsed with the op's result
   * schema: a reply that does not fit is a `guest_error`, an `error` frame is a PyroError
   * with the host's code (`errors.ts`), and a request that does not fit the op's request
   * schema is refused with `invalid_argument` before anything is sent. A peer that does
   * not end the request by its deadline (`bounds.ts`) does not keep it pending: it fails
   * with `timeout`, or resolves with what `onDeadline` makes.
   *
   * The second form sends a message as it is and resolves with the raw terminal message;
   * it is for tests that send what a real host never would.
   */
  request<O extends AnyOp>(
    op: O,
    message: OpRequest<O>,
    options?: RequestOptions,
  ): Promise<OpResult<O>>;
  request(
    message: Record<string, unknown>,
    options?: RequestOptions,
  ): Promise<Record<string, unknown>>;
  request(
    first: AnyOp | Record<string, unknown>,
    second?: unknown,
    third?: RequestOptions,
  ): Promise<unknown> {
    if (!(first instanceof Op)) return this.send(first, second as RequestOptions | undefined);
    return this.typed(first, second, third);
  }

  /** Like `request`, and keeps the op's streamed output within the op's own caps. */
  async requestWithOutput<O extends AnyOp>(
    op: O,
    message: OpRequest<O>,
    options: Omit<RequestOptions, "onData"> = {},
  ): Promise<CollectedOutput<OpResult<O>>> {
    const caps = requestBounds({ op: op.name, ...(message as object) });
    const stdout = new BoundedBuffer(caps.stdoutCap);
    const stderr = new BoundedBuffer(caps.stderrCap);
    const onData = (type: number, payload: Buffer) => {
      if (type === FrameType.stdout) stdout.append(payload, true);
      else if (type === FrameType.stderr) stderr.append(payload, true);
    };
    const result = await this.request(op, message, { ...options, onData });
    return {
      result,
      stdout: stdout.contents(),
      stderr: stderr.contents(),
      stdout_dropped: stdout.truncated,
      stderr_dropped: stderr.truncated,
    };
  }

  private async typed<O extends AnyOp>(
    op: O,
    message: unknown,
    options?: RequestOptions,
  ): Promise<OpResult<O>> {
    checkRequest(op, message);
    const reply = await this.send({ op: op.name, ...(message as object) }, options);
    return parseFromGuest(op.result, reply, op.name) as OpResult<O>;
  }

  /** Sends one control message on a fresh channel; resolves with its terminal message. */
  private send(
    message: Record<string, unknown>,
    options: RequestOptions = {},
  ): Promise<Record<string, unknown>> {
    const broken = this.mux.broken;
    if (broken) return Promise.reject(broken);
    return new Promise((resolve, reject) => {
      const deadlineMs = options.deadlineMs ?? requestBounds(message, this.deadlines).deadlineMs;
      let channel = 0;
      const deadline = setTimeout(() => {
        this.mux.abandon(channel);
        if (options.onDeadline) resolve(options.onDeadline(channel));
        else reject(missedDeadline(message, deadlineMs));
      }, deadlineMs);
      const settle = (fn: () => void) => {
        clearTimeout(deadline);
        this.mux.abandon(channel);
        fn();
      };
      const onData = options.onData ?? (() => {});
      channel = this.mux.open({
        data: (type, payload) => {
          // A caller's handler that throws ends its own request, not the connection.
          try {
            onData(type, payload);
          } catch (error) {
            settle(() => reject(error));
          }
        },
        end: (reply) =>
          settle(() => (reply.type === "error" ? reject(agentError(reply)) : resolve(reply))),
        fail: (error) => settle(() => reject(error)),
      });
      this.mux.sendControl(channel, message);
      // Only now: a caller that signals the channel at once (an abort that came before the
      // exec) must not put its signal on the wire ahead of the request it targets.
      options.onChannel?.(channel);
      if (options.stdin) {
        this.sendStdin(channel, options.stdin).catch((error: unknown) =>
          settle(() => reject(error instanceof Error ? error : new Error(String(error)))),
        );
      }
    });
  }

  /** Streams input in bounded frames, waiting for the socket to drain (backpressure). */
  private async sendStdin(channel: number, stdin: Buffer | AsyncIterable<Buffer>) {
    const chunks = Buffer.isBuffer(stdin) ? [stdin] : stdin;
    for await (const chunk of chunks) {
      for (let offset = 0; offset < chunk.length; offset += STDIN_CHUNK_BYTES) {
        const part = chunk.subarray(offset, offset + STDIN_CHUNK_BYTES);
        if (!this.mux.send(channel, FrameType.stdin, part)) await this.writable();
      }
    }
    this.mux.send(channel, FrameType.stdinEof);
  }

  private writable(): Promise<void> {
    return new Promise((resolve) => this.mux.onceWritable(resolve));
  }

  async hello(
    options: { time_ms?: number; hostname?: string; entropy?: string } = {},
  ): Promise<HelloResult> {
    return this.request(AGENT_OPS.hello, options);
  }

  /**
   * Runs a command and collects its output. The host enforces `max_output_bytes` itself
   * too: the guest's own truncation is not trusted.
   */
  async exec(
    request: ExecRequest,
    handlers: ExecHandlers = {},
    stdin?: Buffer | AsyncIterable<Buffer>,
  ): Promise<ExecOutput> {
    const { stdoutCap, stderrCap } = requestBounds({ op: "exec", ...request });
    const streams = { stdout: new BoundedBuffer(stdoutCap), stderr: new BoundedBuffer(stderrCap) };
    const onData = (type: number, payload: Buffer) => {
      const [stream, handler] =
        type === FrameType.stdout
          ? [streams.stdout, handlers.onStdout]
          : type === FrameType.stderr
            ? [streams.stderr, handlers.onStderr]
            : [undefined, undefined];
      const kept = stream?.append(payload, handlers.collectOutput !== false);
      if (kept?.length) handler?.(kept);
    };
    // Cancelling kills the command's process group; the exit record still comes back.
    let cancel = () => {};
    const onChannel = (channel: number) => {
      cancel = () => this.kill(channel);
      if (handlers.signal?.aborted) cancel();
    };
    const abort = () => cancel();
    handlers.signal?.addEventListener("abort", abort, { once: true });
    const started = performance.now();
    // Past the deadline the guest is not trusted to end the command: kill it and report
    // a timeout, as if the guest had.
    const onDeadline = (channel: number) => {
      this.kill(channel);
      return timedOutExit(performance.now() - started, {
        stdout_bytes: streams.stdout.seen,
        stderr_bytes: streams.stderr.seen,
      });
    };
    let exit: ExitRecord;
    try {
      exit = await this.request(
        AGENT_OPS.exec,
        { ...request, ...(stdin ? { stdin: true } : {}) },
        { onData, stdin, onChannel, onDeadline },
      );
    } finally {
      handlers.signal?.removeEventListener("abort", abort);
    }
    return {
      ...exit,
      stdout_truncated: exit.stdout_truncated || streams.stdout.truncated,
      stderr_truncated: exit.stderr_truncated || streams.stderr.truncated,
      stdout: streams.stdout.contents(),
      stderr: streams.stderr.contents(),
    };
  }

  /** Asks the peer to kill the process group of the exec on `channel`. */
  private kill(channel: number): void {
    this.request(AGENT_OPS.signal, { target_channel: channel, signal: "KILL" }).catch(() => {});
  }

  close(): void {
    this.mux.close();
  }

  destroy(): void {
    this.mux.destroy();
  }
}

function missedDeadline(message: Record<string, unknown>, deadlineMs: number): PyroError {
  const op = typeof message.op === "string" ? message.op.slice(0, 40) : "request";
  return new PyroError(
    "timeout",
    `the guest did not answer ${op} within ${Math.round(deadlineMs / 1000)} s; the VM may be stuck: stop and start it (or delete it)`,
  );
}

/** A request's fields, checked against its op's schema: `invalid_argument` if they do not fit. */
export function checkRequest<O extends AnyOp>(op: O, message: unknown): OpRequest<O> {
  const checked = op.request.safeParse(message);
  if (checked.success) return checked.data as OpRequest<O>;
  throw new PyroError("invalid_argument", `${op.name}: ${describeIssue(checked.error)}`);
}

/** Parses what the guest (or shim) sent; anything that does not fit is a `guest_error`. */
export function parseFromGuest<T>(schema: ZodType<T>, message: unknown, what = "reply"): T {
  const parsed = schema.safeParse(message);
  if (parsed.success) return parsed.data;
  throw new PyroError(
    "guest_error",
    `the guest sent a malformed ${what === "reply" ? "reply" : `${what} reply`} (${describeIssue(parsed.error)})`,
  );
}

/** The first problem zod found, with where it is: `exit_code: Too big...`. */
function describeIssue(error: ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  const where = issue.path.map(String).join(".");
  return (where ? `${where}: ${issue.message}` : issue.message).slice(0, 300);
}
