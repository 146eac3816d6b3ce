import { createConnection, type Socket } from "node:net";
import { HostAgent } from "../helpers/agent.js";

/** What one request produced: its output frames and its terminal control message. */
export interface WireReply {
  stdout: Buffer;
  stderr: Buffer;
  reply: Record<string, unknown>;
}

const HEADER_BYTES = 12;
const CONTROL = 1;
const STDOUT = 2;
const STDERR = 3;

interface Waiter {
  stdout: Buffer[];
  stderr: Buffer[];
  resolve: (reply: WireReply) => void;
  reject: (error: Error) => void;
}

/**
 * A bare protocol client for agent tests: frames written and read here, so a test sees
 * exactly what the agent sent (its error codes, unmapped) whatever the host's client does.
 */
export class AgentWire {
  private buffered = Buffer.alloc(0);
  private readonly waiters = new Map<number, Waiter>();
  private nextChannel = 1;

  private constructor(private readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("close", () => this.failAll(new Error("connection closed")));
    socket.on("error", (error) => this.failAll(error));
  }

  static connect(socketPath: string): Promise<AgentWire> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(socketPath);
      socket.once("connect", () => resolve(new AgentWire(socket)));
      socket.once("error", reject);
    });
  }

  /** Sends one request on a fresh channel; resolves with its terminal message. */
  request(message: Record<string, unknown>, timeoutMs = 20_000): Promise<WireReply> {
    const channel = this.nextChannel++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(channel);
        reject(new Error(`no reply to ${String(message.op)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(channel, {
        stdout: [],
        stderr: [],
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      const payload = Buffer.from(JSON.stringify(message));
      const header = Buffer.alloc(HEADER_BYTES);
      header.writeUInt32LE(payload.length, 0);
      header.writeUInt32LE(channel, 4);
      header.writeUInt8(CONTROL, 8);
      this.socket.write(Buffer.concat([header, payload]));
    });
  }

  /** The terminal message only; fails unless it is a result. */
  async result(message: Record<string, unknown>, timeoutMs?: number) {
    const { reply } = await this.request(message, timeoutMs);
    if (reply.type !== "result") throw new Error(`expected a result, got ${JSON.stringify(reply)}`);
    return reply;
  }

  close(): Promise<void> {
    if (this.socket.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once("close", () => resolve());
      this.socket.destroy();
    });
  }

  private onData(chunk: Buffer) {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= HEADER_BYTES) {
      const length = this.buffered.readUInt32LE(0);
      if (this.buffered.length < HEADER_BYTES + length) return;
      const channel = this.buffered.readUInt32LE(4);
      const type = this.buffered.readUInt8(8);
      const payload = this.buffered.subarray(HEADER_BYTES, HEADER_BYTES + length);
      this.buffered = this.buffered.subarray(HEADER_BYTES + length);
      this.onFrame(channel, type, Buffer.from(payload));
    }
  }

  private onFrame(channel: number, type: number, payload: Buffer) {
    const waiter = this.waiters.get(channel);
    if (!waiter) return;
    if (type === STDOUT) waiter.stdout.push(payload);
    else if (type === STDERR) waiter.stderr.push(payload);
    else if (type === CONTROL) {
      this.waiters.delete(channel);
      waiter.resolve({
        stdout: Buffer.concat(waiter.stdout),
        stderr: Buffer.concat(waiter.stderr),
        reply: JSON.parse(payload.toString("utf8")) as Record<string, unknown>,
      });
    }
  }

  private failAll(error: Error) {
    for (const waiter of this.waiters.values()) waiter.reject(error);
    this.waiters.clear();
  }
}

/** A test file's agent and one bare wire client connected to it (for beforeAll). */
export async function startAgentWire(): Promise<{ agent: HostAgent; wire: AgentWire }> {
  const agent = await HostAgent.start();
  return { agent, wire: await AgentWire.connect(agent.socketPath) };
}

/** Undoes startAgentWire (for afterAll); either is missing when beforeAll failed. */
export async function stopAgentWire(agent?: HostAgent, wire?: AgentWire): Promise<void> {
  await wire?.close();
  await agent?.stop();
}
