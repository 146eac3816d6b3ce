import { once } from "node:events";
import type { Socket } from "node:net";
import { ZodError, type ZodType } from "zod";
import { PyroError } from "../contract/errors.js";
import { REPLY_GRACE_MS, requestBounds, timedOutExit, type DeadlinePolicy } from "./bounds.js";
import {
  decodeControl,
  encodeControl,
  encodeFrame,
  FrameReader,
  FrameType,
  ProtocolError,
} from "./frame.js";
import {
  AgentErrorSchema,
  ExitRecordSchema,
  HelloResultSchema,
  type ExecRequest,
  type ExitRecord,
  type HelloResult,
} from "./messages.js";

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

interface Pending {
  onData: (type: number, payload: Buffer) => void;
  resolve: (message: Record<string, unknown>) => void;
  reject: (error: Error) => void;
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
  onData?: Pending["onData"];
  /** Sent as stdin frames on the request's channel, then stdin_eof. */
  stdin?: Buffer | AsyncIterable<Buffer>;
  onChannel?: (channel: number) => void;
  /** The terminal message to resolve with at the deadline; without it the call fails. */
  onDeadline?: (channel: number) => Record<string, unknown>;
}

const TERMINAL_TYPES = new Set(["result", "exit", "error"]);
const DEFAULT_MAX_OUTPUT_BYTES = 1 << 20;
const STDIN_CHUNK_BYTES = 256 * 1024;
const CLIENT_EXTRA_GRACE_MS = 5_000;

/**
 * Speaks the framed protocol over one stream: to the agent (from the shim) or to a shim
 * (from any client). Each request gets its own channel and ends with one terminal frame.
 */
export class ChannelClient {
  private readonly reader = new FrameReader();
  private readonly pending = new Map<number, Pending>();
  private nextChannel = 1;
  private closedError: Error | undefined;
  private readonly deadlines: DeadlinePolicy;

  constructor(
    private readonly socket: Socket,
    options: ChannelClientOptions = {},
  ) {
    this.deadlines = {
      graceMs: options.replyGraceMs ?? REPLY_GRACE_MS + CLIENT_EXTRA_GRACE_MS,
      ...(options.defaultDeadlineMs ? { defaultDeadlineMs: options.defaultDeadlineMs } : {}),
    };
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("close", () => this.failAll(new PyroError("unavailable", "connection closed")));
    socket.on("error", (error) => this.failAll(error));
  }

  /**
   * Sends one control request and resolves with its terminal message. With `stdin`, its
   * bytes follow on the same channel as stdin frames, then stdin_eof. A peer that does
   * not end the request by its deadline (`bounds.ts`) does not keep it pending: it fails
   * with `timeout`, or resolves with what `onDeadline` makes.
   */
  request(
    message: Record<string, unknown>,
    options: RequestOptions = {},
  ): Promise<Record<string, unknown>> {
    if (this.closedError) return Promise.reject(this.closedError);
    const channel = this.allocateChannel();
    return new Promise((resolve, reject) => {
      const { deadlineMs } = requestBounds(message, this.deadlines);
      const deadline = setTimeout(() => {
        this.pending.delete(channel);
        if (options.onDeadline) resolve(options.onDeadline(channel));
        else reject(missedDeadline(message, deadlineMs));
      }, deadlineMs);
      const settle =
        <T>(fn: (value: T) => void) =>
        (value: T) => {
          clearTimeout(deadline);
          fn(value);
        };
      this.pending.set(channel, {
        onData: options.onData ?? (() => {}),
        resolve: settle(resolve),
        reject: settle(reject),
      });
      this.socket.write(encodeControl(channel, message));
      // Only now: a caller that signals the channel at once (an abort that came before the
      // exec) must not put its signal on the wire ahead of the request it targets.
      options.onChannel?.(channel);
      if (options.stdin) {
        this.sendStdin(channel, options.stdin).catch((error: unknown) => {
          this.pending
            .get(channel)
            ?.reject(error instanceof Error ? error : new Error(String(error)));
          this.pending.delete(channel);
        });
      }
    });
  }

  /** Streams input in bounded frames, waiting for the socket to drain (backpressure). */
  private async sendStdin(channel: number, stdin: Buffer | AsyncIterable<Buffer>) {
    const chunks = Buffer.isBuffer(stdin) ? [stdin] : stdin;
    for await (const chunk of chunks) {
      for (let offset = 0; offset < chunk.length; offset += STDIN_CHUNK_BYTES) {
        const frame = encodeFrame(
          channel,
          FrameType.stdin,
          chunk.subarray(offset, offset + STDIN_CHUNK_BYTES),
        );
        if (!this.socket.write(frame)) await once(this.socket, "drain");
      }
    }
    this.socket.write(encodeFrame(channel, FrameType.stdinEof));
  }

  async hello(options: { time_ms?: number; hostname?: string } = {}): Promise<HelloResult> {
    return parseFromGuest(HelloResultSchema, await this.request({ op: "hello", ...options }));
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
    const limit = request.max_output_bytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    const streams = { stdout: new BoundedBuffer(limit), stderr: new BoundedBuffer(limit) };
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
    let reply: Record<string, unknown>;
    try {
      reply = await this.request(
        { op: "exec", ...request, ...(stdin ? { stdin: true } : {}) },
        { onData, stdin, onChannel, onDeadline },
      );
    } finally {
      handlers.signal?.removeEventListener("abort", abort);
    }
    const exit = parseFromGuest(ExitRecordSchema, reply);
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
    this.request({ op: "signal", target_channel: channel, signal: "KILL" }).catch(() => {});
  }

  close(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private allocateChannel(): number {
    while (this.pending.has(this.nextChannel))
      this.nextChannel = (this.nextChannel % 0xfffffffe) + 1;
    const channel = this.nextChannel;
    this.nextChannel = (this.nextChannel % 0xfffffffe) + 1;
    return channel;
  }

  private onData(chunk: Buffer): void {
    let frames;
    try {
      frames = this.reader.push(chunk);
    } catch (error) {
      this.failAll(new PyroError("guest_error", (error as Error).message));
      this.socket.destroy();
      return;
    }
    for (const frame of frames) {
      const pending = this.pending.get(frame.channel);
      if (!pending) continue;
      if (frame.type !== FrameType.control) {
        pending.onData(frame.type, frame.payload);
        continue;
      }
      let message: Record<string, unknown>;
      try {
        message = decodeControl(frame.payload);
      } catch (error) {
        this.pending.delete(frame.channel);
        pending.reject(new PyroError("guest_error", (error as ProtocolError).message));
        continue;
      }
      if (!TERMINAL_TYPES.has(String(message.type))) continue;
      this.pending.delete(frame.channel);
      if (message.type === "error") pending.reject(agentError(message));
      else pending.resolve(message);
    }
  }

  private failAll(error: Error): void {
    this.closedError ??= error;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}

function missedDeadline(message: Record<string, unknown>, deadlineMs: number): PyroError {
  const op = typeof message.op === "string" ? message.op.slice(0, 40) : "request";
  return new PyroError(
    "timeout",
    `the guest did not answer ${op} within ${Math.round(deadlineMs / 1000)} s; the VM may be stuck: stop and start it (or delete it)`,
  );
}

/** An `error` frame from the agent or shim, as a PyroError with a host-side code. */
export function agentError(message: Record<string, unknown>): PyroError {
  const parsed = AgentErrorSchema.safeParse(message);
  if (!parsed.success) return new PyroError("guest_error", "malformed error from the guest");
  const { code, message: text } = parsed.data;
  const mapped =
    code === "invalid_argument" || code === "not_found" || code === "conflict"
      ? code
      : code === "timeout" || code === "unavailable"
        ? code
        : "guest_error";
  return new PyroError(mapped, text, { details: { guest_code: code } });
}

export function parseFromGuest<T>(schema: ZodType<T>, message: unknown): T {
  try {
    return schema.parse(message);
  } catch (error) {
    const detail = error instanceof ZodError ? error.issues[0]?.message : String(error);
    throw new PyroError("guest_error", `the guest sent a malformed reply (${detail})`);
  }
}

/** Keeps the first `limit` bytes and remembers whether anything was dropped. */
class BoundedBuffer {
  private readonly parts: Buffer[] = [];
  private size = 0;
  truncated = false;
  /** Every byte that arrived, kept or not. */
  seen = 0;

  constructor(private readonly limit: number) {}

  append(chunk: Buffer, store: boolean): Buffer {
    this.seen += chunk.length;
    const room = this.limit - this.size;
    if (chunk.length > room) this.truncated = true;
    const kept = chunk.length > room ? chunk.subarray(0, Math.max(room, 0)) : chunk;
    if (kept.length) {
      if (store) this.parts.push(kept);
      this.size += kept.length;
    }
    return kept;
  }

  contents(): Buffer {
    return Buffer.concat(this.parts);
  }
}
