import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureAgent } from "../../src/env/agent.js";
import { ChannelClient } from "../../src/guest/client.js";
import { sleep } from "../../src/util/process.js";

/** The real agent binary running as a host process on a Unix socket, rooted at a temp dir. */
export class HostAgent {
  private constructor(
    readonly process: ChildProcess,
    readonly socketPath: string,
    readonly root: string,
    private readonly workDir: string,
  ) {}

  static async start(): Promise<HostAgent> {
    const agent = await ensureAgent(() => {});
    const workDir = await mkdtemp(join(tmpdir(), "pyro-agent-test-"));
    const root = join(workDir, "root");
    const { mkdir } = await import("node:fs/promises");
    await mkdir(root);
    const socketPath = join(workDir, "agent.sock");
    const child = spawn(agent.binary, ["--listen", socketPath, "--root", root], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    child.stderr?.resume();
    const host = new HostAgent(child, socketPath, root, workDir);
    for (let i = 0; i < 200; i++) {
      const socket = await host.tryConnect();
      if (socket) {
        socket.destroy();
        return host;
      }
      await sleep(10);
    }
    throw new Error("the agent did not start listening");
  }

  async connect(): Promise<ChannelClient> {
    const socket = await this.tryConnect();
    if (!socket) throw new Error("cannot connect to the agent");
    return new ChannelClient(socket);
  }

  /** A raw socket, for tests that speak malformed protocol on purpose. */
  rawSocket() {
    return this.tryConnect();
  }

  /**
   * SIGTERM first: the agent then kills every child it started, services and shells
   * included, which SIGKILL would leave running. SIGKILL if it has not exited in 5 s.
   */
  async stop(): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      const exited = new Promise((resolve) => this.process.once("exit", resolve));
      this.process.kill("SIGTERM");
      const timer = setTimeout(() => this.process.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(this.workDir, { recursive: true, force: true });
  }

  private tryConnect(): Promise<ReturnType<typeof createConnection> | undefined> {
    return new Promise((resolve) => {
      const socket = createConnection(this.socketPath);
      socket.once("connect", () => resolve(socket));
      socket.once("error", () => resolve(undefined));
    });
  }
}

/** A test file's agent and one client connected to it (for beforeAll). */
export async function startAgentClient(): Promise<{ agent: HostAgent; client: ChannelClient }> {
  const agent = await HostAgent.start();
  return { agent, client: await agent.connect() };
}

/** Undoes startAgentClient (for afterAll); either is missing when beforeAll failed. */
export async function stopAgentClient(agent?: HostAgent, client?: ChannelClient): Promise<void> {
  client?.destroy();
  await agent?.stop();
}

/** Alive and not a zombie (a killed child waits for its new parent to reap it). */
/** The process group of a live process (field 5 of /proc/PID/stat). */
export function processGroupOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
}

export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}
