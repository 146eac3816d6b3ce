import type { Socket } from "node:net";
import { PyroError } from "../contract/errors.js";
import {
  decodeControl,
  encodeControl,
  encodeFrame,
  FrameReader,
  FrameType,
  ProtocolError,
} from "./frame.js";

/** Where one channel's frames go until its terminal frame. */
export interface ChannelRoute {
  /** A `stdout` / `stderr` (or any non-control) frame. */
  data(type: number, payload: Buffer): void;
  /** The terminal control message (`result`, `exit` or `error`); the route is gone after it. */
  end(message: Record<string, unknown>): void;
  /** The connection broke before the terminal frame. */
  fail(error: PyroError): void;
}

export interface ChannelMuxOptions {
  /** Called once when the connection breaks (closed, reset, or a protocol error). */
  onBroken?: (error: PyroError) => void;
}

const TERMINAL_TYPES = new Set(["result", "exit", "error"]);
const LAST_CHANNEL = 0xffffffff;

/**
 * One framed connection shared by many requests, each on a channel of its own: the shim's
 * connection to the agent, and a client's connection to a shim (or, in tests, straight to
 * an agent). It allocates channels, routes frames back by channel, ends a route with its
 * terminal frame, and applies backpressure. What the peer sends is untrusted: a malformed
 * control frame ends its route with a `guest_error`, and a route's handler that throws on
 * a frame never stops the routing of the others.
 */
export class ChannelMux {
  private readonly reader = new FrameReader();
  private readonly routes = new Map<number, ChannelRoute>();
  /** Whoever cannot take more output now (a client with a full socket): reading waits. */
  private readonly holders = new Set<object>();
  private nextChannel = 1;
  private brokenError: PyroError | undefined;
  private notified = false;

  constructor(
    private readonly socket: Socket,
    private readonly options: ChannelMuxOptions = {},
  ) {
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    // A reset ends the connection: `close` follows and fails what is pending.
    socket.on("error", (error) => {
      this.brokenError ??= new PyroError("unavailable", `connection lost: ${error.message}`);
      socket.destroy();
    });
    socket.on("close", () => this.break(new PyroError("unavailable", "connection closed")));
  }

  /** Set once the connection is unusable; requests fail with it at once. */
  get broken(): PyroError | undefined {
    return this.brokenError;
  }

  /** Opens a channel whose frames go to `route` until the terminal frame. */
  open(route: ChannelRoute): number {
    while (this.routes.has(this.nextChannel)) this.bump();
    const channel = this.nextChannel;
    this.bump();
    this.routes.set(channel, route);
    return channel;
  }

  /** Stops routing a channel's frames: what the peer still sends on it is dropped. */
  abandon(channel: number): void {
    this.routes.delete(channel);
  }

  /** False when the peer is not taking input as fast: wait for `onceWritable`. */
  send(channel: number, type: number, payload?: Uint8Array): boolean {
    return this.socket.write(encodeFrame(channel, type, payload));
  }

  sendControl(channel: number, message: object): boolean {
    return this.socket.write(encodeControl(channel, message));
  }

  onceWritable(callback: () => void): void {
    const socket = this.socket;
    if (socket.destroyed || !socket.writableNeedDrain) return callback();
    const done = () => {
      socket.off("drain", done).off("close", done);
      callback();
    };
    socket.on("drain", done).on("close", done);
  }

  /**
   * Backpressure towards the peer: while anyone holds the mux, the socket is not read, so
   * the guest's writes block in the guest instead of piling up on the host.
   */
  hold(holder: object): void {
    this.holders.add(holder);
    this.socket.pause();
  }

  release(holder: object): void {
    if (this.holders.delete(holder) && this.holders.size === 0) this.socket.resume();
  }

  close(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private bump(): void {
    this.nextChannel = (this.nextChannel % (LAST_CHANNEL - 1)) + 1;
  }

  private onData(chunk: Buffer): void {
    let frames;
    try {
      frames = this.reader.push(chunk);
    } catch (error) {
      this.break(new PyroError("guest_error", (error as ProtocolError).message));
      this.socket.destroy();
      return;
    }
    for (const frame of frames) {
      const route = this.routes.get(frame.channel);
      if (!route) continue;
      if (frame.type !== FrameType.control) {
        deliver(() => route.data(frame.type, frame.payload));
        continue;
      }
      const message = terminalMessage(frame.payload);
      if (!message) continue;
      this.routes.delete(frame.channel);
      deliver(() => route.end(message));
    }
  }

  private break(error: PyroError): void {
    this.brokenError ??= error;
    const routes = [...this.routes.values()];
    this.routes.clear();
    for (const route of routes) deliver(() => route.fail(this.brokenError!));
    if (!this.notified) {
      this.notified = true;
      this.options.onBroken?.(this.brokenError);
    }
  }
}

/**
 * The terminal message a control payload holds, or undefined for a message that does not
 * end its request (progress a newer peer may send). A payload that is not one JSON object
 * ends the request as a guest error: nothing sane can follow it on that channel.
 */
function terminalMessage(payload: Buffer): Record<string, unknown> | undefined {
  let message: Record<string, unknown>;
  try {
    message = decodeControl(payload);
  } catch (error) {
    return {
      type: "error",
      code: "guest_error",
      message: `the guest sent a malformed control frame (${(error as ProtocolError).message})`,
    };
  }
  return TERMINAL_TYPES.has(String(message.type)) ? message : undefined;
}

/** A handler failing on untrusted input must not stop the routing of other channels. */
function deliver(fn: () => void): void {
  try {
    fn();
  } catch {
    // The handler's own request reports its failure; the channel is done either way.
  }
}
