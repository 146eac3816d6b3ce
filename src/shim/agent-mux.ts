import type { Socket } from "node:net";
import {
  decodeControl,
  encodeControl,
  encodeFrame,
  FrameReader,
  FrameType,
  type Frame,
} from "../guest/frame.js";

export type FrameHandler = (frame: Frame, message?: Record<string, unknown>) => void;

const TERMINAL_TYPES = new Set(["result", "exit", "error"]);

/**
 * The shim's single connection to the agent. Every user of it (the shim itself, each
 * client request) gets its own agent channel; frames are routed back by channel and a
 * route ends with the request's terminal frame.
 */
export class AgentMux {
  private readonly reader = new FrameReader();
  private readonly routes = new Map<number, FrameHandler>();
  /** Whoever cannot take more output now (a client with a full socket): reading waits. */
  private readonly holders = new Set<object>();
  private nextChannel = 1;

  constructor(
    private readonly socket: Socket,
    private readonly onBroken: (error: Error) => void,
  ) {
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    // A reset here means the VMM went away; the VMM's exit handler reports why.
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.onBroken(new Error("the agent channel closed")));
  }

  /** Opens a channel whose frames go to `handler` until the terminal frame. */
  open(handler: FrameHandler): number {
    while (this.routes.has(this.nextChannel)) this.bump();
    const channel = this.nextChannel;
    this.bump();
    this.routes.set(channel, handler);
    return channel;
  }

  /** Stops routing a channel's frames: what the agent still sends on it is dropped. */
  abandon(channel: number): void {
    this.routes.delete(channel);
  }

  /** False when the agent is not taking input as fast: wait for `onceWritable`. */
  send(channel: number, type: number, payload?: Buffer): boolean {
    return this.socket.write(encodeFrame(channel, type, payload));
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
   * Backpressure towards the guest: while anyone holds the mux, the agent socket is not
   * read, so the guest's writes block in the guest instead of piling up in the shim.
   */
  hold(holder: object): void {
    this.holders.add(holder);
    this.socket.pause();
  }

  release(holder: object): void {
    if (this.holders.delete(holder) && this.holders.size === 0) this.socket.resume();
  }

  sendControl(channel: number, message: object): void {
    this.socket.write(encodeControl(channel, message));
  }

  /** One request from the shim itself; resolves with the terminal message. */
  request(message: object, timeoutMs: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.routes.delete(channel);
        reject(
          new Error(
            `agent did not answer ${JSON.stringify(message).slice(0, 40)} in ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const channel = this.open((frame, control) => {
        if (!control) return;
        clearTimeout(timer);
        if (control.type === "error") reject(new Error(String(control.message)));
        else resolve(control);
      });
      this.sendControl(channel, message);
    });
  }

  private bump() {
    this.nextChannel = (this.nextChannel % 0xfffffffe) + 1;
  }

  /** What the guest sends is untrusted: a handler's failure on it must not end the shim. */
  private deliver(handler: FrameHandler, frame: Frame, message?: Record<string, unknown>): void {
    try {
      handler(frame, message);
    } catch {
      // The handler's own connection reports its failure; the channel is done either way.
    }
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.reader.push(chunk);
    } catch (error) {
      this.onBroken(error as Error);
      this.socket.destroy();
      return;
    }
    for (const frame of frames) {
      const handler = this.routes.get(frame.channel);
      if (!handler) continue;
      if (frame.type !== FrameType.control) {
        this.deliver(handler, frame);
        continue;
      }
      let message: Record<string, unknown>;
      try {
        message = decodeControl(frame.payload);
      } catch {
        message = {
          type: "error",
          code: "internal",
          message: "malformed control frame from the guest",
        };
      }
      if (TERMINAL_TYPES.has(String(message.type))) {
        this.routes.delete(frame.channel);
        this.deliver(handler, frame, message);
      }
    }
  }
}
