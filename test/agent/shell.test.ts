import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeControl, encodeControl, FrameReader, FrameType } from "../../src/guest/frame.js";
import { HostAgent, processAlive, processGroupOf } from "../helpers/agent.js";
import { eventually } from "../helpers/guest.js";

/**
 * The agent's shell_* ops (protocol/README.md, Shells) spoken frame by frame to the real
 * agent binary running as a host process: the terminal, the ring and the process rules
 * are the agent's, so this tier proves them without a VM.
 */

interface Reply {
  message: Record<string, unknown>;
  stdout: Buffer;
}

/** One request per fresh channel; resolves with the terminal frame (result or error). */
class WireClient {
  private readonly reader = new FrameReader();
  private readonly pending = new Map<number, { parts: Buffer[]; done: (r: Reply) => void }>();
  private nextChannel = 1;

  constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      for (const frame of this.reader.push(chunk)) {
        const p = this.pending.get(frame.channel);
        if (!p) continue;
        if (frame.type === FrameType.stdout) p.parts.push(frame.payload);
        if (frame.type !== FrameType.control) continue;
        this.pending.delete(frame.channel);
        p.done({ message: decodeControl(frame.payload), stdout: Buffer.concat(p.parts) });
      }
    });
  }

  send(message: Record<string, unknown>): Promise<Reply> {
    const channel = this.nextChannel++;
    return new Promise((resolve) => {
      this.pending.set(channel, { parts: [], done: resolve });
      this.socket.write(encodeControl(channel, message));
    });
  }

  /** The result, or a thrown Error carrying the agent's error code. */
  async ok(message: Record<string, unknown>): Promise<Reply> {
    const reply = await this.send(message);
    if (reply.message.type === "error")
      throw Object.assign(new Error(String(reply.message.message)), reply.message);
    return reply;
  }
}

let agent: HostAgent;
let wire: WireClient;
let ids = 0;

beforeAll(async () => {
  agent = await HostAgent.start();
  wire = await connectWire();
}, 120_000);

afterAll(async () => {
  wire?.socket.destroy();
  await agent?.stop();
});

async function connectWire(): Promise<WireClient> {
  const socket = await agent.rawSocket();
  if (!socket) throw new Error("cannot connect to the agent");
  return new WireClient(socket);
}

async function openShell(fields: Record<string, unknown> = {}): Promise<string> {
  const shell_id = `sh-${++ids}`;
  const reply = await wire.ok({ op: "shell_open", shell_id, ...fields });
  expect(reply.message).toMatchObject({ type: "result", shell_id, pid: expect.any(Number) });
  return shell_id;
}

async function closeShell(shell_id: string): Promise<void> {
  await wire.ok({ op: "shell_close", shell_id });
}

async function read(shell_id: string, cursor: number, max_bytes?: number) {
  const reply = await wire.ok({ op: "shell_read", shell_id, cursor, max_bytes });
  return { ...(reply.message as Record<string, never>), bytes: reply.stdout } as {
    cursor: number;
    next_cursor: number;
    available: number;
    truncated: boolean;
    state: string;
    exit_code: number | null;
    signal: string | null;
    bytes: Buffer;
  };
}

/**
 * Reads from cursor until the text read so far matches; the bound only limits how long a
 * failure waits on a loaded machine.
 */
async function readUntil(shell_id: string, cursor: number, pattern: RegExp, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let text = "";
  for (;;) {
    const r = await read(shell_id, cursor);
    text += r.bytes.toString("latin1");
    cursor = r.next_cursor;
    if (pattern.test(text)) return { text, cursor, state: r };
    if (Date.now() > deadline) throw new Error(`no ${pattern} in ${JSON.stringify(text)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Reads until the shell's process has been reaped. */
async function readUntilExited(shell_id: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await read(shell_id, 0);
    if (r.state === "exited" || Date.now() > deadline) return r;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function write(shell_id: string, data: string) {
  return (await wire.ok({ op: "shell_write", shell_id, data })).message;
}

/** The command lines of pid's children, from /proc. */
function childCommands(pid: number): string[] {
  const commands: string[] = [];
  for (const entry of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid)
        commands.push(readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ").trim());
    } catch {
      // The process ended while we looked.
    }
  }
  return commands;
}

async function shellPid(shell_id: string): Promise<number> {
  const { message } = await wire.ok({ op: "shell_list" });
  const shells = message.shells as { shell_id: string; pid: number }[];
  return shells.find((s) => s.shell_id === shell_id)!.pid;
}

function hasPython(): boolean {
  try {
    execFileSync("python3", ["-c", "pass"]);
    return true;
  } catch {
    return false;
  }
}

describe("agent shells (host process)", () => {
  it("runs root's default shell on a terminal: a command's output comes back", async () => {
    const id = await openShell();
    await write(id, "echo hi-$((40+2))\n");
    // The arithmetic makes the shell's output differ from the echoed input.
    const { text } = await readUntil(id, 0, /hi-42/);
    expect(text).toContain("hi-42");
    await closeShell(id);
  });

  it("starts the uid-0 login shell named in the root's /etc/passwd, as a login shell", async () => {
    const bash = ["/bin/bash", "/usr/bin/bash"].find((p) => existsSync(p));
    expect(bash, "the host needs bash for this test").toBeDefined();
    await mkdir(join(agent.root, "etc"), { recursive: true });
    await writeFile(
      join(agent.root, "etc/passwd"),
      `daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nroot:x:0:0:root:/root:${bash}\n`,
    );
    try {
      const id = await openShell();
      await write(id, 'echo "zero=$0" "bash=${BASH_VERSION:+yes}"');
      await write(id, "\n");
      expect((await readUntil(id, 0, /zero=-bash bash=yes/)).text).toContain("zero=-bash");
      await closeShell(id);
    } finally {
      await rm(join(agent.root, "etc"), { recursive: true });
    }
  });

  it("sets TERM, the window size and the cwd under the root; env overrides apply", async () => {
    await mkdir(join(agent.root, "work"), { recursive: true });
    const id = await openShell({
      argv: ["sh"],
      cols: 100,
      rows: 40,
      cwd: "/work",
      env: { X: "y" },
    });
    await write(id, 'echo "t=$TERM x=$X size=$(stty size) pwd=$(pwd)"\n');
    const { text } = await readUntil(id, 0, /size=\d+ \d+ pwd=\//);
    expect(text).toContain(`t=xterm-256color x=y size=40 100 pwd=${join(agent.root, "work")}`);
    await closeShell(id);
  });

  it.runIf(hasPython())("runs a python3 REPL: 1+1 answers 2", async () => {
    const id = await openShell({ argv: ["python3", "-q"] });
    const prompt = await readUntil(id, 0, />>> $/);
    await write(id, "1+1\n");
    const { text } = await readUntil(id, prompt.cursor, /\n2\r?\n>>> $/);
    expect(text).toMatch(/^1\+1\r?\n2\r?\n>>> $/);
    await closeShell(id);
  });

  it("continues from the cursor: reads return each byte once, in order", async () => {
    const id = await openShell({ argv: ["sh"] });
    await write(id, "echo first-$((1+1))\n");
    const first = await readUntil(id, 0, /first-2/);
    await write(id, "echo second-$((2+2))\n");
    const second = await readUntil(id, first.cursor, /second-4/);
    expect(second.text).not.toContain("first-2");
    const whole = await read(id, 0, 1 << 20);
    expect(whole.cursor).toBe(0);
    expect(whole.truncated).toBe(false);
    const seen = first.text + second.text;
    expect(whole.bytes.subarray(0, seen.length).toString("latin1")).toBe(seen);
    // A cursor past the end reads nothing and points at the end.
    const ahead = await read(id, whole.available + 100);
    expect(ahead).toMatchObject({ cursor: whole.available, next_cursor: whole.available });
    expect(ahead.bytes.length).toBe(0);
    await closeShell(id);
  });

  it("keeps the newest 1 MiB: an old cursor reads from the oldest byte, marked truncated", async () => {
    const id = await openShell({ argv: ["sh"] });
    await write(id, "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo end-$((3*3))\n");
    await readUntil(id, 0, /end-9/, 25_000);
    const r = await read(id, 0, 1 << 20);
    expect(r.truncated).toBe(true);
    expect(r.available).toBeGreaterThan(3_000_000);
    expect(r.cursor).toBe(r.available - (1 << 20));
    expect(r.next_cursor).toBe(r.available);
    expect(r.bytes.length).toBe(1 << 20);
    expect(r.bytes.subarray(r.bytes.length - 64).toString("latin1")).toContain("end-9");
    // A cursor inside the ring is exact: the last 10 bytes are the last 10 bytes.
    const last = await read(id, r.available - 10);
    expect(last.truncated).toBe(false);
    expect(last.bytes).toEqual(r.bytes.subarray(r.bytes.length - 10));
    await closeShell(id);
  });

  it("INT reaches the foreground job: sleep 100 stops and the shell answers again", async () => {
    const id = await openShell({ argv: ["sh"] });
    const pid = await shellPid(id);
    await write(id, "sleep 100\n");
    expect(await eventually(() => childCommands(pid).includes("sleep 100"))).toBe(true);
    await wire.ok({ op: "shell_signal", shell_id: id, signal: "INT" });
    await write(id, "echo alive-$((2+3))\n");
    const { text } = await readUntil(id, 0, /alive-5/, 10_000);
    expect(text).toContain("alive-5");
    expect((await read(id, 0)).state).toBe("running");
    await closeShell(id);
  });

  it("records how the shell ended; its output stays readable and writes are refused", async () => {
    const id = await openShell({ argv: ["sh"] });
    await write(id, "echo bye-$((3+4)); exit 7\n");
    const { text } = await readUntil(id, 0, /bye-7/);
    expect(text).toContain("bye-7");
    const state = await readUntilExited(id);
    expect(state).toMatchObject({ state: "exited", exit_code: 7, signal: null });
    expect(state.bytes.toString("latin1")).toContain("bye-7");
    await expect(write(id, "echo no\n")).rejects.toMatchObject({ code: "invalid_argument" });
    await closeShell(id);

    const killed = await openShell({ argv: ["sh"] });
    await wire.ok({ op: "shell_signal", shell_id: killed, signal: "KILL" });
    expect(await readUntilExited(killed)).toMatchObject({
      state: "exited",
      exit_code: null,
      signal: "KILL",
    });
    await closeShell(killed);
  });

  it("hangs up a shell whose processes all closed the terminal; writes are refused", async () => {
    const id = await openShell({ argv: ["sh", "-c", "exec <&- >&- 2>&-; sleep 100"] });
    // The agent sees EIO and closes the terminal: the session gets SIGHUP.
    expect(await readUntilExited(id)).toMatchObject({ exit_code: null, signal: "HUP" });
    const refused = await wire.send({ op: "shell_write", shell_id: id, data: "x" });
    expect(refused.message).toMatchObject({ type: "error", code: "invalid_argument" });
    await closeShell(id);
  });

  it("a program that cannot be started says why on the terminal and exits 127", async () => {
    const id = await openShell({ argv: ["no-such-program-pyro"] });
    const { text } = await readUntil(id, 0, /pyro-agent: no-such-program-pyro: [^\n]*\n/);
    expect(text).toMatch(/No such file or directory/);
    expect(await readUntilExited(id)).toMatchObject({ exit_code: 127, signal: null });
    await closeShell(id);
  });

  it("close ends the shell at once, and KILLs a process that ignores HUP", async () => {
    const plain = await openShell({ argv: ["sh"] });
    const plainPid = await shellPid(plain);
    const stubborn = await openShell({ argv: ["sh", "-c", 'trap "" HUP; echo ready; sleep 100'] });
    const stubbornPid = await shellPid(stubborn);
    await readUntil(stubborn, 0, /ready/);
    await closeShell(plain);
    await closeShell(stubborn);
    await expect(read(plain, 0)).rejects.toMatchObject({ code: "not_found" });
    const { message } = await wire.ok({ op: "shell_list" });
    expect((message.shells as { shell_id: string }[]).map((s) => s.shell_id)).not.toContain(
      stubborn,
    );
    expect(await eventually(() => !processAlive(plainPid))).toBe(true);
    expect(await eventually(() => !processAlive(stubbornPid))).toBe(true);
  });

  it("close KILLs a background job in a process group of its own that ignores HUP", async () => {
    // An interactive bash gives each job its own process group: HUP to the shell's group
    // misses it, and bash's forwarded HUP is ignored. Only the shell's session holds it.
    const id = await openShell({ argv: ["bash", "--norc", "--noprofile", "-i"] });
    await write(id, '(trap "" HUP TERM; exec sleep 1000) & echo "job-$!"\n');
    const { text } = await readUntil(id, 0, /job-\d+/);
    const jobPid = Number(/job-(\d+)/.exec(text)![1]);
    const shell = await shellPid(id);
    expect(processGroupOf(jobPid)).not.toBe(shell);
    await closeShell(id);
    expect(await eventually(() => !processAlive(jobPid))).toBe(true);
  });

  it("outlives the connection that opened it", async () => {
    const id = await openShell({ argv: ["sh"] });
    await write(id, "echo kept-$((5+5))\n");
    // A host-process agent serves one client at a time: this one goes, a new one comes.
    wire.socket.destroy();
    wire = await connectWire();
    const { text } = await readUntil(id, 0, /kept-10/);
    expect(text).toContain("kept-10");
    expect((await read(id, 0)).state).toBe("running");
    await closeShell(id);
  });

  it("refuses a 17th shell and a live id again with busy", async () => {
    const { message: before } = await wire.ok({ op: "shell_list" });
    const openBefore = (before.shells as unknown[]).length;
    const opened: string[] = [];
    for (let i = openBefore; i < 16; i++) opened.push(await openShell({ argv: ["sh"] }));
    const refused = await wire.send({ op: "shell_open", shell_id: "one-more", argv: ["sh"] });
    expect(refused.message).toMatchObject({ type: "error", code: "busy" });
    await closeShell(opened.pop()!);
    const again = await wire.send({ op: "shell_open", shell_id: opened[0], argv: ["sh"] });
    expect(again.message).toMatchObject({ type: "error", code: "busy" });
    for (const id of opened) await closeShell(id);
    const { message } = await wire.ok({ op: "shell_list" });
    expect((message.shells as unknown[]).length).toBe(openBefore);
  });

  it("answers unknown ids with not_found and bad fields with invalid_argument", async () => {
    for (const request of [
      { op: "shell_read", shell_id: "nope", cursor: 0 },
      { op: "shell_write", shell_id: "nope", data: "x" },
      { op: "shell_signal", shell_id: "nope", signal: "INT" },
      { op: "shell_close", shell_id: "nope" },
    ]) {
      const r = await wire.send(request);
      expect(r.message, request.op).toMatchObject({ type: "error", code: "not_found" });
    }
    const bad = [
      { op: "shell_open", shell_id: "-leading-dash" },
      { op: "shell_open", shell_id: "x".repeat(65) },
      { op: "shell_open", shell_id: "ok", cols: 0 },
      { op: "shell_open", shell_id: "ok", rows: 1001 },
      { op: "shell_open", shell_id: "ok", argv: [] },
      { op: "shell_open", shell_id: "ok", colour: 1 },
    ];
    for (const request of bad) {
      const r = await wire.send(request);
      expect(r.message, JSON.stringify(request)).toMatchObject({
        type: "error",
        code: "invalid_argument",
      });
    }
    const missingCwd = await wire.send({ op: "shell_open", shell_id: "ok", cwd: "/missing" });
    expect(missingCwd.message).toMatchObject({ type: "error", code: "not_found" });
    const id = await openShell({ argv: ["sh"] });
    for (const request of [
      { op: "shell_read", shell_id: id },
      { op: "shell_read", shell_id: id, cursor: -1 },
      { op: "shell_read", shell_id: id, cursor: 0, max_bytes: (1 << 20) + 1 },
      { op: "shell_write", shell_id: id, data: "x".repeat(32769) },
      { op: "shell_signal", shell_id: id, signal: "STOP" },
    ]) {
      const r = await wire.send(request);
      expect(r.message, JSON.stringify(request).slice(0, 80)).toMatchObject({
        type: "error",
        code: "invalid_argument",
      });
    }
    await closeShell(id);
  });

  it("queues input the terminal does not take yet, up to 256 KiB, then answers busy", async () => {
    // Nothing reads the terminal, so the line discipline fills up and input waits.
    const id = await openShell({ argv: ["sh", "-c", "sleep 100"] });
    const chunk = "a".repeat(32768);
    let accepted = 0;
    let refused: Reply | undefined;
    while (!refused && accepted < 64) {
      const r = await wire.send({ op: "shell_write", shell_id: id, data: chunk });
      if (r.message.type === "error") refused = r;
      else accepted++;
    }
    expect(refused?.message).toMatchObject({ code: "busy" });
    // The whole queue was usable; what the kernel's terminal buffers took (it varies with
    // how much echo the loop has drained) comes on top, and the loop bound stops a queue
    // without a limit.
    expect(accepted).toBeGreaterThanOrEqual(8);
    await closeShell(id);
  });

  // Last: it ends the agent this file shares.
  it("kills every shell's process when the agent is told to exit", async () => {
    // It ignores the terminal's hang-up, so only the agent's KILL ends it.
    const id = await openShell({ argv: ["sh", "-c", 'trap "" HUP; echo ready; sleep 100'] });
    const pid = await shellPid(id);
    await readUntil(id, 0, /ready/);
    const exited = new Promise((resolve) => agent.process.once("exit", resolve));
    agent.process.kill("SIGTERM");
    await exited;
    expect(await eventually(() => !processAlive(pid))).toBe(true);
  });
});
