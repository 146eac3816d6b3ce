import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processAlive, processGroupOf, type HostAgent } from "../helpers/agent.js";
import { AgentWire, startAgentWire, stopAgentWire } from "./wire.js";

/** Polls until check resolves truthy; the bound only limits how long a failure waits. */
async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface ServiceEntry {
  name: string;
  pid: number;
  state: "running" | "exited";
  exit_code: number | null;
  signal: string | null;
  started_at_ms: number;
  ended_at_ms: number | null;
}

let agent: HostAgent;
let wire: AgentWire;

async function list(): Promise<ServiceEntry[]> {
  return (await wire.result({ op: "service_list" })).services as ServiceEntry[];
}

async function entry(name: string): Promise<ServiceEntry | undefined> {
  return (await list()).find((s) => s.name === name);
}

function exited(name: string) {
  return eventually(async () => {
    const s = await entry(name);
    return s?.state === "exited" ? s : undefined;
  });
}

beforeAll(async () => ({ agent, wire } = await startAgentWire()), 120_000);
afterAll(() => stopAgentWire(agent, wire));

describe("services in the agent (host process)", () => {
  // First, while the table's slots are fresh: a slot never used must not be mistaken
  // for one holding descriptors (a regression closed descriptor 0, the first service's
  // log, so its output went nowhere or into the next service's log).
  it("keeps each service's output in its own logs as services come and go", async () => {
    const loop = (word: string) => ["sh", "-c", `while :; do echo ${word}; sleep 0.01; done`];
    await wire.result({ op: "service_start", name: "loop-a", argv: loop("a") });
    await wire.result({ op: "service_start", name: "loop-b", argv: loop("b") });
    await wire.result({ op: "service_start", name: "once-c", argv: ["echo", "c"] });
    const lines = async (name: string) =>
      (await wire.request({ op: "service_logs", name, tail_lines: 100_000 })).stdout
        .toString()
        .split("\n")
        .filter(Boolean);
    const seen = (await lines("loop-a")).length;
    await eventually(async () => (await lines("loop-a")).length > seen + 5);
    expect(new Set(await lines("loop-a"))).toEqual(new Set(["a"]));
    expect(new Set(await lines("loop-b"))).toEqual(new Set(["b"]));
    await eventually(async () => (await lines("once-c")).length > 0);
    expect(await lines("once-c")).toEqual(["c"]);
    for (const name of ["loop-a", "loop-b"])
      await wire.result({ op: "service_stop", name, grace_ms: 0 });
  });

  it("starts a service, lists it running and returns its logs per stream", async () => {
    const before = Date.now();
    const started = await wire.result({
      op: "service_start",
      name: "web",
      argv: ["sh", "-c", 'echo "hello $GREETING"; echo oops >&2; exec sleep 100'],
      env: { GREETING: "there" },
    });
    expect(started).toMatchObject({ name: "web" });
    expect(started.pid).toBeGreaterThan(1);
    expect(started.started_at_ms).toBeGreaterThanOrEqual(before - 1000);
    expect(await entry("web")).toMatchObject({
      pid: started.pid,
      state: "running",
      exit_code: null,
      signal: null,
      ended_at_ms: null,
    });
    const logs = await eventually(async () => {
      const r = await wire.request({ op: "service_logs", name: "web" });
      return r.stdout.length > 0 && r.stderr.length > 0 ? r : undefined;
    });
    expect(logs.stdout.toString()).toBe("hello there\n");
    expect(logs.stderr.toString()).toBe("oops\n");
    expect(logs.reply).toEqual({
      type: "result",
      name: "web",
      stdout_truncated: false,
      stderr_truncated: false,
    });
    const dir = join(agent.root, "run/pyro-services");
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect(await readFile(join(dir, "web.stdout"), "utf8")).toBe("hello there\n");
  });

  it("records the exit code of a service that exits by itself", async () => {
    const started = await wire.result({
      op: "service_start",
      name: "crash",
      argv: ["sh", "-c", "echo bye; exit 3"],
    });
    const s = await exited("crash");
    expect(s).toMatchObject({ exit_code: 3, signal: null, pid: started.pid });
    expect(s.ended_at_ms).toBeGreaterThanOrEqual(s.started_at_ms);
    const logs = await wire.request({ op: "service_logs", name: "crash" });
    expect(logs.stdout.toString()).toBe("bye\n");
  });

  it("reports a command that cannot run like a shell: 127 and the message in stderr", async () => {
    await wire.result({ op: "service_start", name: "nocmd", argv: ["no-such-command-pyro"] });
    expect(await exited("nocmd")).toMatchObject({ exit_code: 127 });
    const logs = await wire.request({ op: "service_logs", name: "nocmd" });
    expect(logs.stderr.toString()).toMatch(/^pyro-agent: no-such-command-pyro: /);
  });

  it("stops with TERM, and the reply carries the exit record", async () => {
    const { pid } = await wire.result({
      op: "service_start",
      name: "calm",
      argv: ["sleep", "100"],
    });
    const stopped = await wire.result({ op: "service_stop", name: "calm", grace_ms: 10_000 });
    expect(stopped).toEqual({
      type: "result",
      name: "calm",
      state: "exited",
      exit_code: null,
      signal: "TERM",
      ended_at_ms: expect.any(Number) as number,
      killed: false,
    });
    expect(processAlive(pid as number)).toBe(false);
    // Stopping an exited service answers at once with its record.
    expect(await wire.result({ op: "service_stop", name: "calm" })).toMatchObject({
      signal: "TERM",
      killed: false,
    });
  });

  it("a stop right after the start ends the service, never the agent", async () => {
    // Both requests go out in one write, so the agent handles the stop in the same turn
    // as the fork: the TERM reaches the child before exec, while it would still run the
    // agent's own handlers unless they are reset with signals blocked.
    for (let i = 0; i < 20; i++) {
      const start = wire.result({ op: "service_start", name: "quick", argv: ["sleep", "100"] });
      const stop = wire.result({ op: "service_stop", name: "quick", grace_ms: 5000 });
      await start;
      expect(await stop).toMatchObject({ state: "exited", signal: "TERM", killed: false });
    }
    expect((await wire.result({ op: "hello" })).protocol).toBe(1);
  });

  it("escalates to KILL when the process ignores TERM through the grace period", async () => {
    // An ignored TERM is inherited through exec, so sleep ignores it as well. "ready" says
    // the trap is in place: a TERM before it would end the shell at once.
    await wire.result({
      op: "service_start",
      name: "stubborn",
      argv: ["sh", "-c", 'trap "" TERM; echo ready; sleep 100'],
    });
    await eventually(async () => {
      const logs = await wire.request({ op: "service_logs", name: "stubborn" });
      return logs.stdout.toString() === "ready\n";
    });
    const stopped = await wire.result({ op: "service_stop", name: "stubborn", grace_ms: 300 });
    expect(stopped).toMatchObject({ state: "exited", signal: "KILL", killed: true });
    expect(await entry("stubborn")).toMatchObject({ state: "exited", signal: "KILL" });
  });

  it("stop ends a background job in a process group of its own that ignores TERM", async () => {
    // `set -m` gives the job its own process group, as a job-control shell does; only the
    // session (every child of the agent leads one) still holds it.
    await wire.result({
      op: "service_start",
      name: "jobs",
      argv: ["bash", "-c", 'set -m; (trap "" TERM HUP; exec sleep 1000) & echo "job $!"; wait'],
    });
    const job = await eventually(async () => {
      const logs = await wire.request({ op: "service_logs", name: "jobs" });
      return /job (\d+)/.exec(logs.stdout.toString())?.[1];
    });
    const jobPid = Number(job);
    expect(processAlive(jobPid)).toBe(true);
    expect(processGroupOf(jobPid)).toBe(jobPid);
    await wire.result({ op: "service_stop", name: "jobs", grace_ms: 300 });
    expect(await eventually(async () => !processAlive(jobPid))).toBe(true);
  });

  it("bounds the logs by rotation and keeps the newest output", async () => {
    // seq 1 20000 writes 108,894 bytes: more than 2 x 4096 many times over.
    const full = Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join("");
    await wire.result({
      op: "service_start",
      name: "chatty",
      argv: ["seq", "1", "20000"],
      max_log_bytes: 4096,
    });
    await exited("chatty");
    const dir = join(agent.root, "run/pyro-services");
    const current = await readFile(join(dir, "chatty.stdout"), "utf8");
    const rotated = await readFile(join(dir, "chatty.stdout.1"), "utf8");
    expect(rotated.length).toBe(4096);
    expect(current.length).toBeLessThan(4096);
    expect(full.endsWith(rotated + current)).toBe(true);
    const tail = await wire.request({ op: "service_logs", name: "chatty", tail_lines: 3 });
    expect(tail.stdout.toString()).toBe("19998\n19999\n20000\n");
    expect(tail.reply).toMatchObject({ stdout_truncated: true, stderr_truncated: false });
    const bytes = await wire.request({ op: "service_logs", name: "chatty", max_bytes: 10 });
    expect(bytes.stdout.toString()).toBe(full.slice(-10));
  });

  it("keeps running after the connection that started it closes; execs of that connection die", async () => {
    const { pid } = await wire.result({
      op: "service_start",
      name: "lasting",
      argv: ["sleep", "100"],
    });
    const pidFile = join(agent.root, "exec.pid");
    const exec = wire.request({
      op: "exec",
      argv: ["sh", "-c", `echo $$ > ${pidFile}; exec sleep 100`],
    });
    const execPid = await eventually(async () =>
      Number((await readFile(pidFile, "utf8").catch(() => "")).trim()),
    );
    await wire.close();
    await exec.catch(() => undefined);
    wire = await AgentWire.connect(agent.socketPath);
    expect(await entry("lasting")).toMatchObject({ pid, state: "running" });
    expect(processAlive(pid as number)).toBe(true);
    await eventually(async () => !processAlive(execPid));
    await wire.result({ op: "service_stop", name: "lasting", grace_ms: 0 });
  });

  it("refuses a second service of a running name, and replaces an exited one", async () => {
    await wire.result({ op: "service_start", name: "dup", argv: ["sleep", "100"] });
    const again = await wire.request({ op: "service_start", name: "dup", argv: ["true"] });
    expect(again.reply).toMatchObject({
      type: "error",
      code: "busy",
      message: "service dup is already running",
    });
    await wire.result({ op: "service_stop", name: "dup", grace_ms: 0 });
    const restarted = await wire.result({ op: "service_start", name: "dup", argv: ["true"] });
    expect((await list()).filter((s) => s.name === "dup")).toHaveLength(1);
    expect((await exited("dup")).pid).toBe(restarted.pid);
  });

  it("keeps 32 entries: the oldest exited one makes room, 32 running are busy", async () => {
    for (const s of await list())
      await wire.result({ op: "service_stop", name: s.name, grace_ms: 0 });
    const names = Array.from({ length: 32 }, (_, i) => `fill-${i}`);
    for (const name of names)
      await wire.result({ op: "service_start", name, argv: ["sleep", "100"] });
    const full = await wire.request({ op: "service_start", name: "one-more", argv: ["true"] });
    expect(full.reply).toMatchObject({ type: "error", code: "busy" });
    await wire.result({ op: "service_stop", name: "fill-3", grace_ms: 0 });
    await wire.result({ op: "service_stop", name: "fill-1", grace_ms: 0 });
    await wire.result({ op: "service_start", name: "one-more", argv: ["sleep", "100"] });
    const after = (await list()).map((s) => s.name);
    expect(after).toHaveLength(32);
    expect(after).not.toContain("fill-3"); // exited first, dropped first
    expect(after).toContain("fill-1");
    for (const name of after) await wire.result({ op: "service_stop", name, grace_ms: 0 });
  }, 60_000);

  it("answers bad requests with precise codes", async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ op: "fly" }, "unsupported", /^unknown op "fly"$/],
      [{ op: "service_start", name: ".x", argv: ["true"] }, "invalid_argument", /name must be/],
      [{ op: "service_start", name: "a/b", argv: ["true"] }, "invalid_argument", /name must be/],
      [{ op: "service_start", name: "x".repeat(65), argv: ["true"] }, "invalid_argument", /name/],
      [{ op: "service_start", name: "x", argv: [] }, "invalid_argument", /service_start: argv/],
      [
        { op: "service_start", name: "x", argv: ["true"], max_log_bytes: 100 },
        "invalid_argument",
        /max_log_bytes/,
      ],
      [
        { op: "service_start", name: "x", argv: ["true"], log_dir: "/a/../b" },
        "invalid_argument",
        /log_dir/,
      ],
      [{ op: "service_start", name: "x", argv: ["true"], cwd: "/missing" }, "not_found", /cwd/],
      [
        { op: "service_start", name: "x", argv: ["true"], port: 1 },
        "invalid_argument",
        /unknown field/,
      ],
      [{ op: "service_stop", name: "ghost" }, "not_found", /^no service named ghost$/],
      [{ op: "service_stop", name: "x", grace_ms: 60_001 }, "invalid_argument", /grace_ms/],
      [{ op: "service_logs", name: "ghost" }, "not_found", /^no service named ghost$/],
      [{ op: "service_logs", name: "x", tail_lines: 0 }, "invalid_argument", /tail_lines/],
    ];
    for (const [request, code, message] of cases) {
      const { reply } = await wire.request(request);
      expect(reply, JSON.stringify(request)).toMatchObject({ type: "error", code });
      expect(reply.message as string).toMatch(message);
    }
    expect(await entry("x")).toBeUndefined();
  });

  // Last: the agent is gone afterwards.
  it("ends every service at shutdown", async () => {
    const { pid } = await wire.result({
      op: "service_start",
      name: "to-end",
      argv: ["sleep", "100"],
    });
    expect(processAlive(pid as number)).toBe(true);
    await wire.result({ op: "shutdown", power_off: false });
    await eventually(async () => !processAlive(pid as number));
  });
});
