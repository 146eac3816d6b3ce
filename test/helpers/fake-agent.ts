import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import {
  decodeControl,
  encodeControl,
  encodeFrame,
  FrameReader,
  FrameType,
} from "../../src/guest/frame.js";
import type { VmmDriver, VmmExit, VmmHandle, VmmLaunchSpec } from "../../src/vmm/driver.js";
import { ChannelClient, type ChannelClientOptions } from "../../src/guest/client.js";

/** One request the fake agent received, with a way to answer on its channel. */
export interface AgentCall {
  channel: number;
  message: Record<string, unknown>;
  /** Sends a data frame, waiting while the peer does not read (like a blocked guest). */
  output(type: number, payload: Buffer): Promise<void>;
  reply(message: Record<string, unknown>): void;
  /** Drops the whole connection, as a crashed agent would. */
  hangUp(): void;
}

export type AgentScript = (call: AgentCall) => void | Promise<void>;

/**
 * A scripted stand-in for the guest agent, speaking the real framing on a Unix socket:
 * it answers hello, signal and shutdown like the agent and hands every other request to
 * `script`, so a test can play a guest that misbehaves. Its `driver` plays the VMM.
 */
export class FakeAgent {
  readonly calls: AgentCall[] = [];
  /** Every request's op, in the order the agent read them. */
  readonly ops: unknown[] = [];
  readonly signals: Record<string, unknown>[] = [];
  private server: Server | undefined;
  private exit: (exit: VmmExit) => void = () => {};

  constructor(private readonly script: AgentScript) {}

  readonly driver: VmmDriver = {
    name: "qemu",
    launch: (spec) => this.launch(spec),
  };

  private async launch(spec: VmmLaunchSpec): Promise<VmmHandle> {
    this.server = createServer((socket) => this.serve(socket));
    this.server.listen(spec.agentSocketPath);
    await once(this.server, "listening");
    let running = true;
    const exited = new Promise<VmmExit>((resolve) => {
      this.exit = (exit) => {
        running = false;
        this.server?.close();
        resolve(exit);
      };
    });
    const socket = createConnection(spec.agentSocketPath);
    await once(socket, "connect");
    return {
      pid: 0,
      exited,
      agentChannel: Promise.resolve(socket),
      stop: () => Promise.resolve(this.exit({ code: 0, signal: null })),
      kill: () => this.exit({ code: null, signal: "SIGKILL" }),
      status: () => (running ? "running" : "exited"),
    };
  }

  private serve(socket: Socket): void {
    const reader = new FrameReader();
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) {
        if (frame.type !== FrameType.control) continue;
        const call = callOn(socket, frame.channel, decodeControl(frame.payload));
        void this.answer(call);
      }
    });
  }

  private async answer(call: AgentCall): Promise<void> {
    const { message } = call;
    this.ops.push(message.op);
    if (message.op === "hello")
      return call.reply({
        type: "result",
        protocol: 1,
        agent_version: "fake",
        pid1: false,
        init_errors: [],
      });
    if (message.op === "signal") {
      this.signals.push(message);
      return call.reply({ type: "result" });
    }
    if (message.op === "shutdown") {
      call.reply({ type: "result" });
      return this.exit({ code: 0, signal: null });
    }
    this.calls.push(call);
    await this.script(call);
  }

  async close(dir: string): Promise<void> {
    this.exit({ code: null, signal: "SIGKILL" });
    await rm(dir, { recursive: true, force: true });
  }
}

function callOn(socket: Socket, channel: number, message: Record<string, unknown>): AgentCall {
  return {
    channel,
    message,
    async output(type, payload) {
      if (socket.destroyed) return;
      if (!socket.write(encodeFrame(channel, type, payload))) await once(socket, "drain");
    },
    reply(reply) {
      if (!socket.destroyed) socket.write(encodeControl(channel, reply));
    },
    hangUp() {
      socket.destroy();
    },
  };
}

/** An exit record as the agent sends it. */
export function exitRecord(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: "exit",
    exit_code: 0,
    signal: null,
    timed_out: false,
    stdout_truncated: false,
    stderr_truncated: false,
    stdout_bytes: 0,
    stderr_bytes: 0,
    duration_ms: 1,
    ...fields,
  };
}

/**
 * A ChannelClient connected straight to a fake agent (no shim between them): for tests of
 * the client's own rules. `close` ends both and removes the socket's directory.
 */
export async function fakeAgentClient(script: AgentScript, options: ChannelClientOptions = {}) {
  const agent = new FakeAgent(script);
  const dir = await mkdtemp(join(tmpdir(), "pyro-fake-agent-"));
  const vmm = await agent.driver.launch({ agentSocketPath: join(dir, "agent.sock") } as never);
  const client = new ChannelClient(await vmm.agentChannel, options);
  const close = async () => {
    client.destroy();
    await agent.close(dir);
  };
  return { agent, client, close };
}
