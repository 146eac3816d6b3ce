import { once } from "node:events";
import { mkdtemp, readFile } from "node:fs/promises";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import { encodeControl, FrameReader, FrameType } from "../../src/guest/frame.js";
import { AGENT_OPS } from "../../src/guest/ops/index.js";
import { exitCodeOf } from "../../src/manager/command-result.js";
import { ShimClient } from "../../src/shim/client.js";
import { vmFiles, type ShimLaunchConfig } from "../../src/shim/launch.js";
import { Supervisor } from "../../src/shim/supervisor.js";
import { sleep } from "../../src/util/process.js";
import { exitRecord, fakeAgentClient, FakeAgent, type AgentScript } from "../helpers/fake-agent.js";

/**
 * The shim and the client against a scripted hostile agent (issue 7, defects 5 and 6):
 * real Supervisor, real framing over Unix sockets, only the guest is played.
 */

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function launchConfig(overrides: Partial<ShimLaunchConfig> = {}): ShimLaunchConfig {
  return {
    vm_id: "ws_fake",
    kernel_path: "/nonexistent/vmlinux",
    initrd_path: "/nonexistent/initrd",
    rootfs_path: "/nonexistent/rootfs",
    state_disk_path: "/nonexistent/state",
    vcpu_count: 1,
    mem_mib: 128,
    acceleration: "tcg",
    vmm: "qemu",
    hostname: "ws-fake",
    kernel_args: [],
    ttl_seconds: 0,
    ttl_action: "stop",
    reply_grace_ms: 300,
    boot_timeout_ms: 5_000,
    workspace_root: null,
    delete_on_exit: false,
    owner_pid: null,
    ...overrides,
  };
}

/** A real shim, in this process, whose guest is `script`. */
async function startShim(script: AgentScript, overrides: Partial<ShimLaunchConfig> = {}) {
  const dir = await mkdtemp(join(tmpdir(), "pyro-shim-test-"));
  const agent = new FakeAgent(script);
  const supervisor = new Supervisor(dir, launchConfig(overrides), agent.driver, () => {});
  const running = supervisor.run();
  cleanups.push(async () => {
    await supervisor.end({ remove: true, reason: "test done" });
    await running;
    await agent.close(dir);
  });
  const client = await connectWhenListening(dir);
  cleanups.unshift(async () => client.destroy());
  expect((await client.waitReady()).state).toBe("ready");
  return { dir, agent, supervisor, client };
}

async function connectWhenListening(dir: string): Promise<ShimClient> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const client = await ShimClient.connect(dir).catch(() => undefined);
    if (client) return client;
    await sleep(10);
  }
  throw new Error("the shim never listened");
}

/** Fails instead of hanging when a call that must end stays pending. */
function settlesWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    sleep(ms).then(() => Promise.reject(new Error(`${what} still pending after ${ms} ms`))),
  ]);
}

const silentGuest: AgentScript = () => {};

describe("shim bounds on a hostile guest", () => {
  it("times out an exec whose guest never sends exit, kills it, and lets the idle TTL stop the VM", async () => {
    const { dir, agent, supervisor, client } = await startShim(silentGuest, { ttl_seconds: 0.5 });
    const result = await settlesWithin(
      client.exec({ argv: ["sleep", "infinity"], timeout_ms: 200 }),
      10_000,
      "the exec",
    );
    expect(result.timed_out).toBe(true);
    expect(exitCodeOf(result)).toBe(124);
    // The shim asked the guest to kill the process group of that exec.
    const [exec] = agent.calls;
    await until(() => agent.signals.length > 0);
    expect(agent.signals).toContainEqual(
      expect.objectContaining({ target_channel: exec?.channel, signal: "KILL" }),
    );
    // Nothing is in flight any more, so the idle TTL stops the VM.
    await settlesWithin(supervisor.ended, 10_000, "the idle TTL");
    const status = JSON.parse(await readFile(vmFiles(dir).status, "utf8")) as {
      stop_reason: string;
    };
    expect(status.stop_reason).toBe("ttl");
  });

  it("fails a file operation the guest never answers with a timeout error", async () => {
    const { client } = await startShim(silentGuest, { request_deadline_ms: 200 });
    const read = client.request({ op: "file_read", root: "/workspace", path: "a" });
    const error = await settlesWithin(read, 10_000, "the read").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PyroError);
    expect(error).toMatchObject({ code: "timeout", message: expect.stringMatching(/file_read/) });
  });

  it("passes on no more output than the request's cap and marks it truncated", async () => {
    const flood: AgentScript = async (call) => {
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      for (let sent = 0; sent < 3 << 20; sent += chunk.length)
        await call.output(FrameType.stdout, chunk);
      call.reply(exitRecord({ stdout_bytes: 3 << 20 }));
    };
    const { client } = await startShim(flood);
    let received = 0;
    const exit = await client.request(
      { op: "exec", argv: ["yes"], max_output_bytes: 1 << 20, timeout_ms: 10_000 },
      { onData: (_type, payload) => (received += payload.length) },
    );
    expect(received).toBe(1 << 20);
    expect(exit).toMatchObject({ type: "exit", stdout_truncated: true });
  });

  it("passes service_logs stderr and shell_read output on within each op's own caps", async () => {
    const logs: AgentScript = async (call) => {
      const text = Buffer.from("0123456789");
      await call.output(FrameType.stdout, text);
      await call.output(FrameType.stderr, text);
      if (call.message.op === "shell_read") {
        return call.reply({
          type: "result",
          shell_id: "sh-1",
          cursor: 0,
          next_cursor: 10,
          available: 10,
          truncated: false,
          state: "running",
          exit_code: null,
          signal: null,
        });
      }
      call.reply({ type: "result", name: "web", stdout_truncated: false, stderr_truncated: false });
    };
    const { client } = await startShim(logs);
    const whole = await client.requestWithOutput(AGENT_OPS.service_logs, { name: "web" });
    expect([whole.stdout.toString(), whole.stderr.toString()]).toEqual([
      "0123456789",
      "0123456789",
    ]);
    expect(whole.result).toMatchObject({ stdout_truncated: false, stderr_truncated: false });
    // Past max_bytes the shim drops the rest and says so in the stream's own flag.
    const capped = await client.requestWithOutput(AGENT_OPS.service_logs, {
      name: "web",
      max_bytes: 4,
    });
    expect([capped.stdout.toString(), capped.stderr.toString()]).toEqual(["0123", "0123"]);
    expect(capped.result).toMatchObject({ stdout_truncated: true, stderr_truncated: true });
    // A shell has no stderr: what a guest sends there never reaches the client.
    const shell = await client.requestWithOutput(AGENT_OPS.shell_read, {
      shell_id: "sh-1",
      cursor: 0,
    });
    expect([shell.stdout.toString(), shell.stderr.length]).toEqual(["0123456789", 0]);
  });

  it("stops reading a flooding guest while a client does not read, and resumes after", async () => {
    const total = 64 << 20;
    let written = 0;
    let floodDone = false;
    const flood: AgentScript = async (call) => {
      const chunk = Buffer.alloc(64 * 1024, 0x79);
      for (; written < total; written += chunk.length) await call.output(FrameType.stdout, chunk);
      floodDone = true;
      call.reply(exitRecord({ stdout_bytes: total }));
    };
    const { dir } = await startShim(flood);
    const raw = createConnection(vmFiles(dir).socket);
    cleanups.unshift(async () => void raw.destroy());
    await once(raw, "connect");
    raw.pause();
    raw.write(
      encodeControl(1, {
        op: "exec",
        argv: ["yes"],
        max_output_bytes: 1 << 30,
        timeout_ms: 60_000,
      }),
    );
    await untilStill(() => written);
    // The guest is blocked on a full channel: the shim did not take the flood in.
    expect(floodDone).toBe(false);
    expect(written).toBeLessThan(16 << 20);
    const { stdoutBytes, terminal } = await readUntilTerminal(raw, 1);
    expect(stdoutBytes).toBe(total);
    expect(terminal).toMatchObject({ type: "exit", stdout_truncated: false });
  });
});

describe("a client that stops reading", () => {
  it("holds up the agent only until its own request ends", async () => {
    // The script runs inside the agent it belongs to, which exists only once started.
    const started: { agent?: FakeAgent } = {};
    const script: AgentScript = async (call) => {
      if (call.message.argv?.toString() !== "yes") return call.reply(exitRecord());
      const chunk = Buffer.alloc(64 * 1024, 0x79);
      while (!started.agent?.signals.length) await call.output(FrameType.stdout, chunk);
    };
    const shim = await startShim(script);
    const agent = (started.agent = shim.agent);
    const raw = createConnection(vmFiles(shim.dir).socket);
    cleanups.unshift(async () => void raw.destroy());
    await once(raw, "connect");
    raw.pause();
    raw.write(
      encodeControl(1, { op: "exec", argv: ["yes"], max_output_bytes: 1 << 30, timeout_ms: 200 }),
    );
    await until(() => agent.calls.length === 1);
    // Another client's exec: its reply waits behind the flood until the flood's deadline.
    const other = await settlesWithin(
      shim.client.exec({ argv: ["true"], timeout_ms: 10_000 }),
      4_000,
      "the other client's exec",
    );
    expect([other.timed_out, other.exit_code]).toEqual([false, 0]);
  });
});

describe("client cancellation", () => {
  it("sends the kill for an exec aborted before it started after the exec itself", async () => {
    const { agent, client, close } = await fakeAgentClient(silentGuest, { replyGraceMs: 200 });
    cleanups.push(close);
    const aborted = new AbortController();
    aborted.abort();
    const exec = client.exec(
      { argv: ["sleep", "60"], timeout_ms: 100 },
      { signal: aborted.signal },
    );
    await until(() => agent.ops.length === 2);
    // A kill read before its exec finds nothing to kill, and the command would run on.
    expect(agent.ops).toEqual(["exec", "signal"]);
    await exec;
  });
});

describe("client deadline on a peer that never answers", () => {
  it("reports an exec as timed out, asks for the kill, and fails other requests with timeout", async () => {
    const { agent, client, close } = await fakeAgentClient(silentGuest, {
      replyGraceMs: 200,
      defaultDeadlineMs: 200,
    });
    cleanups.push(close);
    const result = await settlesWithin(
      client.exec({ argv: ["sleep", "infinity"], timeout_ms: 100 }),
      10_000,
      "the exec",
    );
    expect(result).toMatchObject({ timed_out: true, exit_code: null });
    await until(() => agent.signals.length > 0);
    expect(agent.signals).toContainEqual(
      expect.objectContaining({ target_channel: agent.calls[0]?.channel, signal: "KILL" }),
    );
    const list = client.request({ op: "file_list", root: "/workspace", path: "." });
    await expect(settlesWithin(list, 10_000, "the listing")).rejects.toMatchObject({
      code: "timeout",
    });
  });
});

/** Waits (up to 10 s) for something the peer does after a reply it already sent. */
async function until(check: () => boolean): Promise<void> {
  for (let waited = 0; !check() && waited < 10_000; waited += 20) await sleep(20);
}

/** Waits until `value` stops changing (the flood is blocked or done). */
async function untilStill(value: () => number): Promise<void> {
  let last = -1;
  let still = 0;
  while (still < 5) {
    await sleep(100);
    still = value() === last ? still + 1 : 0;
    last = value();
  }
}

async function readUntilTerminal(socket: Socket, channel: number) {
  const reader = new FrameReader();
  let stdoutBytes = 0;
  socket.resume();
  for await (const chunk of socket as AsyncIterable<Buffer>) {
    for (const frame of reader.push(chunk)) {
      if (frame.channel !== channel) continue;
      if (frame.type === FrameType.stdout) stdoutBytes += frame.payload.length;
      if (frame.type === FrameType.control) {
        return { stdoutBytes, terminal: JSON.parse(frame.payload.toString()) as unknown };
      }
    }
  }
  throw new Error("the shim closed the connection before the exec ended");
}
