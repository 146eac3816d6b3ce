/**
 * The host side of shells against a scripted guest: records, cursors, max_chars, plain,
 * wait_for_idle_ms and the guest's refusals. A real guest proves the PTY itself
 * (test/guest/shells.test.ts); these pin the logic that lives on the host.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import { once } from "node:events";
import { createConnection, createServer, type Server } from "node:net";
import { ChannelClient } from "../../src/guest/client.js";
import {
  decodeControl,
  encodeControl,
  encodeFrame,
  FrameReader,
  FrameType,
} from "../../src/guest/frame.js";
import { readShellOutput } from "../../src/guest/shells.js";
import { ShellManager, shellText } from "../../src/manager/shells.js";
import type { BeforeStopHook } from "../../src/manager/sandbox.js";
import type { WorkspaceManager } from "../../src/manager/workspaces.js";
import { Pyro } from "../../src/sdk/pyro.js";
import { tempDir } from "../helpers/temp.js";

const WS = "ws_0123456789ab";

/** One shell as the agent keeps it: all output so far, of which the ring holds the tail. */
class ScriptedGuest {
  output = Buffer.alloc(0);
  ringBytes = 1 << 20;
  state: "running" | "exited" = "running";
  readonly requests: Record<string, unknown>[] = [];
  readonly written: string[] = [];
  /** Answers an op with this error frame instead (code, message). */
  refuse: Partial<Record<string, { code: string; message: string }>> = {};
  /** Called before each shell_read: lets a test make output appear over time. */
  onRead: () => void = () => {};
  client!: ChannelClient;

  emit(text: string | Buffer): void {
    this.output = Buffer.concat([this.output, Buffer.from(text)]);
  }

  /** What the agent sends back: data frames, then the terminal frame. */
  answer(message: Record<string, unknown>): { stdout?: Buffer; reply: Record<string, unknown> } {
    this.requests.push(message);
    const refusal = this.refuse[String(message.op)];
    if (refusal) return { reply: { type: "error", ...refusal } };
    const shell_id = message.shell_id;
    switch (message.op) {
      case "shell_open":
        return { reply: { type: "result", shell_id, pid: 42 } };
      case "shell_write":
        this.written.push(String(message.data));
        return {
          reply: {
            type: "result",
            shell_id,
            bytes_written: Buffer.byteLength(String(message.data)),
          },
        };
      case "shell_read":
        return this.read(message);
      case "shell_close":
        return { reply: { type: "result", shell_id, closed: true } };
      default:
        return { reply: { type: "result", shell_id } };
    }
  }

  private read(message: Record<string, unknown>) {
    const cursor = Number(message.cursor);
    this.onRead();
    const available = this.output.length;
    const oldest = Math.max(available - this.ringBytes, 0);
    const start = cursor > available ? available : Math.max(cursor, oldest);
    const end = Math.min(start + Number(message.max_bytes), available);
    const reply = {
      type: "result",
      shell_id: message.shell_id,
      cursor: start,
      next_cursor: end,
      available,
      truncated: cursor < oldest,
      state: this.state,
      exit_code: this.state === "exited" ? 0 : null,
      signal: null,
    };
    return { stdout: this.output.subarray(start, end), reply };
  }
}

const servers: Server[] = [];

/**
 * A real ChannelClient connected to `answer` over a Unix socket speaking the real framing,
 * so replies go through the ops' schemas and the wire error table as an agent's do.
 */
async function connectScripted(
  answer: (message: Record<string, unknown>) => { stdout?: Buffer; reply: Record<string, unknown> },
): Promise<ChannelClient> {
  const path = join(tempDir("pyro-shells-sock-"), "agent.sock");
  const server = createServer((socket) => {
    const reader = new FrameReader();
    socket.on("data", (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) {
        if (frame.type !== FrameType.control) continue;
        const { stdout, reply } = answer(decodeControl(frame.payload));
        if (stdout?.length) socket.write(encodeFrame(frame.channel, FrameType.stdout, stdout));
        socket.write(encodeControl(frame.channel, reply));
      }
    });
  });
  servers.push(server);
  server.listen(path);
  await once(server, "listening");
  const socket = createConnection(path);
  await once(socket, "connect");
  return new ChannelClient(socket);
}

async function scriptedGuest(): Promise<ScriptedGuest> {
  const guest = new ScriptedGuest();
  guest.client = await connectScripted((message) => guest.answer(message));
  return guest;
}

/** The parts of WorkspaceManager shells use: a started workspace whose guest is scripted. */
function workspacesFor(guest: ScriptedGuest, state: { value: string } = { value: "started" }) {
  return {
    requireStarted: async () => {
      if (state.value !== "started") throw new PyroError("conflict", "not started");
    },
    status: async () => ({ state: state.value }),
    active: async () => ({ state: state.value }),
    withGuest: <T>(_id: string, fn: (client: ChannelClient) => Promise<T>) => fn(guest.client),
    touch: async () => {},
    onBeforeStop: (hook: BeforeStopHook) => hooks.push(hook),
  } as unknown as WorkspaceManager;
}

let home = "";
let hooks: BeforeStopHook[] = [];
beforeEach(() => {
  hooks = [];
  home = tempDir("pyro-shells-unit-");
  process.env.PYRO_HOME = home;
});
afterEach(() => {
  delete process.env.PYRO_HOME;
  for (const server of servers.splice(0)) server.close();
});

const shellsDir = () => join(home, "workspaces", WS, "shells");

async function openedShell(guest: ScriptedGuest, options = {}) {
  const { mkdirSync } = await import("node:fs");
  mkdirSync(join(home, "workspaces", WS), { recursive: true });
  const shells = new ShellManager(workspacesFor(guest), { idlePollMs: 5, ...options });
  const record = await shells.open({ workspace_id: WS });
  return { shells, record };
}

describe("ShellManager against a scripted guest", () => {
  it("opens with a host-made id in /workspace at 120x30 and keeps a record", async () => {
    const guest = await scriptedGuest();
    const { record } = await openedShell(guest);
    expect(record).toMatchObject({ state: "running", cwd: "/workspace", cols: 120, rows: 30 });
    expect(record.shell_id).toMatch(/^sh-[0-9a-f]{8}$/);
    expect(guest.requests[0]).toMatchObject({
      op: "shell_open",
      shell_id: record.shell_id,
      cwd: "/workspace",
    });
    expect(readdirSync(shellsDir())).toEqual([`${record.shell_id}.json`]);
  });

  it("continues from next_cursor, and cuts max_chars at whole characters", async () => {
    const guest = await scriptedGuest();
    const { shells, record } = await openedShell(guest);
    guest.emit("héllo🙂wörld");
    const id = { workspace_id: WS, shell_id: record.shell_id };
    const first = await shells.read({ ...id, max_chars: 6 });
    expect(first).toMatchObject({ output: "héllo🙂", cursor: 0, has_more: true });
    expect(first.next_cursor).toBe(Buffer.byteLength("héllo🙂"));
    const second = await shells.read({ ...id, cursor: first.next_cursor });
    expect(second).toMatchObject({ output: "wörld", truncated: false, has_more: false });
    expect(second.next_cursor).toBe(guest.output.length);
  });

  it("says truncated when the cursor fell off the guest's ring", async () => {
    const guest = await scriptedGuest();
    guest.ringBytes = 10;
    const { shells, record } = await openedShell(guest);
    guest.emit("0123456789abcdefghij");
    const read = await shells.read({ workspace_id: WS, shell_id: record.shell_id });
    expect(read).toMatchObject({ output: "abcdefghij", cursor: 10, truncated: true });
  });

  it("with plain, strips escapes and leaves an unfinished one for the next read", async () => {
    const guest = await scriptedGuest();
    const { shells, record } = await openedShell(guest);
    guest.emit("\x1b[1;32mok\x1b[0m\r\n$ \x1b]0;ti");
    const id = { workspace_id: WS, shell_id: record.shell_id, plain: true };
    const first = await shells.read(id);
    expect(first.output).toBe("ok\n$ ");
    guest.emit("tle\x07done");
    const second = await shells.read({ ...id, cursor: first.next_cursor });
    expect(second.output).toBe("done");
  });

  it("with plain and a max_chars shorter than an escape, reads still move past it", async () => {
    const guest = await scriptedGuest();
    const { shells, record } = await openedShell(guest);
    const title = `\x1b]0;${"t".repeat(300)}\x07`;
    guest.emit(`\x1b[38;5;196mred\x1b[0m ${title}ok`);
    const id = { workspace_id: WS, shell_id: record.shell_id, plain: true, max_chars: 3 };
    let cursor = 0;
    let text = "";
    for (let reads = 0; cursor < guest.output.length; reads++) {
      expect(reads).toBeLessThan(50);
      const read = await shells.read({ ...id, cursor });
      expect(read.next_cursor).toBeGreaterThan(cursor);
      text += read.output;
      cursor = read.next_cursor;
    }
    expect(text).toBe("red ok");
  });

  it("wait_for_idle_ms returns the output of a command that prints in bursts", async () => {
    const guest = await scriptedGuest();
    const { shells, record } = await openedShell(guest);
    let reads = 0;
    guest.onRead = () => {
      reads += 1;
      if (reads <= 5) guest.emit(`line ${reads}\n`);
    };
    const read = await shells.read({
      workspace_id: WS,
      shell_id: record.shell_id,
      wait_for_idle_ms: 30,
    });
    expect(read.output).toBe("line 1\nline 2\nline 3\nline 4\nline 5\n");
    // Polls move one byte at most: the output itself came in one read.
    const sizes = guest.requests.filter((r) => r.op === "shell_read").map((r) => r.max_bytes);
    expect(sizes.slice(0, -1).every((size) => size === 1)).toBe(true);
  });

  it("wait_for_idle_ms gives up on a shell that never goes quiet, after its extra wait", async () => {
    const guest = await scriptedGuest();
    const { shells, record } = await openedShell(guest, { idleExtraWaitMs: 100 });
    guest.onRead = () => guest.emit("y\n");
    const read = await shells.read({
      workspace_id: WS,
      shell_id: record.shell_id,
      wait_for_idle_ms: 50,
    });
    expect(read.output.startsWith("y\ny\n")).toBe(true);
  });

  it("appends a newline to input unless asked not to", async () => {
    const guest = await scriptedGuest();
    const { shells, record } = await openedShell(guest);
    const id = { workspace_id: WS, shell_id: record.shell_id };
    expect((await shells.write({ ...id, input: "echo hi" })).bytes_written).toBe(8);
    await shells.write({ ...id, input: "y", append_newline: false });
    expect(guest.written).toEqual(["echo hi\n", "y"]);
  });

  it("records how the shell ended once a read sees it exited", async () => {
    const guest = await scriptedGuest();
    const { shells, record } = await openedShell(guest);
    guest.emit("logout\r\n");
    guest.state = "exited";
    const read = await shells.read({ workspace_id: WS, shell_id: record.shell_id });
    expect(read).toMatchObject({ state: "exited", exit_code: 0 });
    const { readShellRecord } = await import("../../src/manager/shell-store.js");
    expect(await readShellRecord(WS, record.shell_id)).toMatchObject({
      state: "exited",
      exit_code: 0,
    });
  });

  it("turns the guest's refusals into errors that say what to do", async () => {
    const guest = await scriptedGuest();
    const { shells, record } = await openedShell(guest);
    const id = { workspace_id: WS, shell_id: record.shell_id };
    guest.refuse.shell_write = {
      code: "invalid_argument",
      message: `shell ${record.shell_id} has exited`,
    };
    await expect(shells.write({ ...id, input: "x" })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining("open a new one"),
    });
    guest.refuse.shell_write = {
      code: "invalid_argument",
      message: `shell_write: shell ${record.shell_id} has closed its terminal`,
    };
    await expect(shells.write({ ...id, input: "x" })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining("has closed its terminal; read its last output"),
    });
    guest.refuse.shell_write = { code: "busy", message: "input queue full" };
    await expect(shells.write({ ...id, input: "x" })).rejects.toMatchObject({
      message: expect.stringContaining("not taking input"),
    });
    guest.refuse.shell_open = { code: "busy", message: "too many shells" };
    await expect(shells.open({ workspace_id: WS })).rejects.toMatchObject({
      message: expect.stringContaining("close one"),
    });
    // Nothing half-made: the refused open left no record behind.
    expect(readdirSync(shellsDir())).toEqual([`${record.shell_id}.json`]);
  });

  it("a shell the guest no longer knows is not_found, and its record goes", async () => {
    const guest = await scriptedGuest();
    const { shells, record } = await openedShell(guest);
    guest.refuse.shell_read = { code: "not_found", message: "no such shell" };
    await expect(
      shells.read({ workspace_id: WS, shell_id: record.shell_id }),
    ).rejects.toMatchObject({ code: "not_found", message: expect.stringContaining("has ended") });
    expect(existsSync(join(shellsDir(), `${record.shell_id}.json`))).toBe(false);
  });

  it("a shell of a stopped workspace is gone; closing it still succeeds", async () => {
    const guest = await scriptedGuest();
    const { mkdirSync } = await import("node:fs");
    mkdirSync(join(home, "workspaces", WS), { recursive: true });
    const state = { value: "started" };
    const shells = new ShellManager(workspacesFor(guest, state));
    const first = await shells.open({ workspace_id: WS });
    const second = await shells.open({ workspace_id: WS });
    state.value = "stopped";
    await expect(shells.read({ workspace_id: WS, shell_id: first.shell_id })).rejects.toMatchObject(
      { code: "not_found" },
    );
    expect(await shells.close({ workspace_id: WS, shell_id: second.shell_id })).toMatchObject({
      closed: true,
    });
    expect(readdirSync(shellsDir())).toEqual([]);
    expect(guest.requests.some((r) => r.op === "shell_close")).toBe(false);
  });

  it.each(["stop", "reset", "delete"] as const)(
    "a workspace %s forgets every shell of the workspace",
    async (reason) => {
      const guest = await scriptedGuest();
      const { shells, record } = await openedShell(guest);
      for (const hook of hooks) await hook({ id: WS, reason, guest: undefined });
      expect(existsSync(shellsDir())).toBe(false);
      await expect(
        shells.write({ workspace_id: WS, shell_id: record.shell_id, input: "x" }),
      ).rejects.toMatchObject({ code: "not_found" });
    },
  );
});

/** A guest with the agent's table of 16 shells, some left by callers that vanished. */
class TableGuest extends ScriptedGuest {
  readonly live = new Set<string>();

  override answer(message: Record<string, unknown>) {
    const id = String(message.shell_id);
    if (message.op === "shell_open" && this.live.size >= 16) {
      this.requests.push(message);
      return { reply: { type: "error", code: "busy", message: "too many shells (16)" } };
    }
    if (message.op === "shell_open") this.live.add(id);
    if (message.op === "shell_close") this.live.delete(id);
    if (message.op === "shell_list") {
      this.requests.push(message);
      const entry = (shell_id: string) => ({
        shell_id,
        pid: 42,
        state: "running",
        cols: 120,
        rows: 30,
        available: 0,
        exit_code: null,
        signal: null,
      });
      return { reply: { type: "result", shells: [...this.live].map(entry) } };
    }
    return super.answer(message);
  }
}

describe("shells whose opener vanished", () => {
  it("a full table of shells nobody can name does not refuse new shells forever", async () => {
    const guest = new TableGuest();
    guest.client = await connectScripted((message) => guest.answer(message));
    const { shells, record } = await openedShell(guest);
    // Opened in the guest by CLIs killed before they could keep a record.
    for (let i = 0; i < 15; i++) guest.live.add(`sh-orphan${i}`);
    const next = await shells.open({ workspace_id: WS });
    expect(guest.live.has(next.shell_id)).toBe(true);
    // A shell somebody can still name is never closed for room.
    expect(guest.live.has(record.shell_id)).toBe(true);
    expect(readdirSync(shellsDir()).sort()).toEqual(
      [`${record.shell_id}.json`, `${next.shell_id}.json`].sort(),
    );
  });

  it("a full table of named shells is still busy, with what to do", async () => {
    const guest = new TableGuest();
    guest.client = await connectScripted((message) => guest.answer(message));
    const { shells } = await openedShell(guest);
    for (let i = 0; i < 15; i++) await shells.open({ workspace_id: WS });
    const error = (await shells.open({ workspace_id: WS }).catch((e: unknown) => e)) as PyroError;
    expect(error.code).toBe("busy");
    expect(error.message).toMatch(/close one/);
    expect(readdirSync(shellsDir())).toHaveLength(16);
  });
});

describe("readShellOutput does not trust the guest's cursors", () => {
  const call = async (reply: Record<string, unknown>, bytes: string, cursor = 0) => {
    const client = await connectScripted(() => ({
      stdout: Buffer.from(bytes),
      reply: {
        type: "result",
        shell_id: "sh-1",
        state: "running",
        exit_code: null,
        signal: null,
        ...reply,
      },
    }));
    try {
      return await readShellOutput(client, { shell_id: "sh-1", cursor, max_bytes: 8 });
    } finally {
      client.destroy();
    }
  };
  const ok = { cursor: 0, next_cursor: 3, available: 3, truncated: false };

  it("accepts a reply that matches its bytes", async () => {
    expect((await call(ok, "abc")).data.toString()).toBe("abc");
  });

  it.each([
    ["more bytes than asked", ok, "abcdefghij"],
    ["a next_cursor that does not match the bytes", { ...ok, next_cursor: 5 }, "abc"],
    [
      "a start later than asked without truncated",
      { ...ok, cursor: 2, next_cursor: 5, available: 5 },
      "abc",
    ],
    ["a next_cursor past what is available", { ...ok, available: 2 }, "abc"],
    ["a negative cursor", { ...ok, cursor: -1 }, "abc"],
    ["an unknown state", { ...ok, state: "zombie" }, "abc"],
  ])("refuses %s as a guest error", async (_what, reply, bytes) => {
    await expect(call(reply, bytes)).rejects.toMatchObject({ code: "guest_error" });
  });
});

describe("shellText", () => {
  const chunk = (text: string, state: "running" | "exited" = "running") => {
    const data = Buffer.from(text);
    return { data, state, next_cursor: data.length, available: data.length };
  };

  it("shows an unfinished escape of an exited shell's last output instead of waiting", () => {
    expect(shellText(chunk("bye\x1b[", "exited"), 100, true)).toMatchObject({
      output: "bye",
      bytes: 5,
    });
    // A running shell's fragment waits, and alone it is not "more output waiting".
    expect(shellText(chunk("bye\x1b["), 100, true)).toEqual({
      output: "bye",
      bytes: 3,
      has_more: false,
    });
  });

  it("with plain, an escape longer than max_chars is consumed as nothing, not held forever", () => {
    expect(shellText(chunk("\x1b[38;5;196mred"), 5, true)).toEqual({
      output: "",
      bytes: 11,
      has_more: true,
    });
    // Unfinished in every byte fetched while the guest has more: it is dropped, not held.
    const long = { ...chunk("\x1b]0;tttt"), available: 1000 };
    expect(shellText(long, 3, true)).toMatchObject({ output: "", bytes: 8, has_more: true });
    // Unfinished with nothing more printed yet: it waits for the rest, as before.
    expect(shellText(chunk("\x1b]0;tttt"), 3, true)).toEqual({
      output: "",
      bytes: 0,
      has_more: false,
    });
  });

  it("passes raw output through untouched without plain", () => {
    expect(shellText(chunk("\x1b[1mbold\x1b[0m"), 100, false).output).toBe("\x1b[1mbold\x1b[0m");
  });
});

describe("shell params are checked before any guest work", () => {
  const pyro = new Pyro();

  it.each([
    ["negative cols", () => pyro.openShell({ workspace_id: WS, cols: -5 })],
    ["rows past 1000", () => pyro.openShell({ workspace_id: WS, rows: 1001 })],
    ["a cwd outside /workspace", () => pyro.openShell({ workspace_id: WS, cwd: "/etc" })],
    ["a shell id with a slash", () => pyro.readShell({ workspace_id: WS, shell_id: "../x" })],
    ["a negative cursor", () => pyro.readShell({ workspace_id: WS, shell_id: "sh-1", cursor: -1 })],
    [
      "wait_for_idle_ms past 30 s",
      () => pyro.readShell({ workspace_id: WS, shell_id: "sh-1", wait_for_idle_ms: 30_001 }),
    ],
    [
      "input of 32 KiB",
      () => pyro.writeShell({ workspace_id: WS, shell_id: "sh-1", input: "x".repeat(32 * 1024) }),
    ],
    [
      "an unknown signal",
      () => pyro.signalShell({ workspace_id: WS, shell_id: "sh-1", signal_name: "STOP" as "INT" }),
    ],
  ])("refuses %s with invalid_argument", async (_what, run) => {
    await expect(run()).rejects.toMatchObject({ code: "invalid_argument" });
    // No workspace exists at all: an invalid_argument proves nothing was looked up first.
    expect(existsSync(join(home, "workspaces"))).toBe(false);
  });

  it("an unknown shell of an unknown workspace is not_found", async () => {
    await expect(
      pyro.readShell({ workspace_id: WS, shell_id: "sh-00000000" }),
    ).rejects.toMatchObject({ code: "not_found" });
  });
});
