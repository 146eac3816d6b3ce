import { execFileSync } from "node:child_process";
import { link, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostAgent } from "../helpers/agent.js";
import { startAgentWire, stopAgentWire, type AgentWire } from "./wire.js";

/**
 * The agent against what a guest process can do to it: files planted where the agent
 * writes service logs or reads /etc/passwd (none may block or redirect it), what a
 * service or shell inherits from the agent, and log files piling up as services come and
 * go. The agent runs as a host process (--root), so the test reads /proc of its children
 * directly.
 */

let agent: HostAgent;
let wire: AgentWire;

beforeAll(async () => ({ agent, wire } = await startAgentWire()), 120_000);
afterAll(() => stopAgentWire(agent, wire));

/** Runs `program` and sleeps: past its exec, whose closing of descriptors comes after
 * the switch of /proc/PID/exe. */
function settledIn(pid: number, program: string): boolean {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return readlinkSync(`/proc/${pid}/exe`).endsWith(`/${program}`) && state === "S";
}

/** Descriptor number -> what it points at, once the process sleeps in `program`. */
async function openDescriptors(pid: number, program: string): Promise<Record<string, string>> {
  // The pid is answered right after fork, before the exec that closes the descriptors
  // the agent marked close-on-exec.
  for (let i = 0; !settledIn(pid, program); i++) {
    if (i > 500) throw new Error(`${pid} never ran ${program}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const dir = `/proc/${pid}/fd`;
  const inherited = inheritedByAgent();
  return Object.fromEntries(
    readdirSync(dir)
      .filter((fd) => !inherited.has(fd))
      .map((fd) => [fd, readlinkSync(join(dir, fd))]),
  );
}

/**
 * Descriptors above 2 the host agent got from whoever started it and keeps open across
 * exec (a test runner's own): not the agent's doing, and absent in a guest, where the
 * agent is PID 1.
 */
function inheritedByAgent(): Set<string> {
  const pid = agent.process.pid;
  const closeOnExec = 0o2000000;
  return new Set(
    readdirSync(`/proc/${pid}/fd`).filter((fd) => {
      const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
      const flags = parseInt(/^flags:\s*(\d+)/m.exec(info)?.[1] ?? "0", 8);
      return Number(fd) > 2 && (flags & closeOnExec) === 0;
    }),
  );
}

describe("the agent against a hostile guest", () => {
  it("refuses a FIFO planted at a service's log name instead of blocking on it", async () => {
    const logDir = join(agent.root, "fifo-logs");
    await mkdir(logDir);
    execFileSync("mkfifo", [join(logDir, "trap.stdout")]);
    // A blocking open of a FIFO with no reader never returns: the agent would hang.
    const { reply } = await wire.request(
      { op: "service_start", name: "trap", argv: ["true"], log_dir: "/fifo-logs" },
      5_000,
    );
    expect(reply).toMatchObject({ type: "error", code: "invalid_argument" });
    expect(String(reply.message)).toMatch(/trap\.stdout.*not a regular file/);
    expect((await wire.result({ op: "service_list" })).services).toEqual([]);
  });

  it("refuses a link planted at a service's log name and leaves its target alone", async () => {
    const logDir = join(agent.root, "link-logs");
    const target = join(agent.root, "precious");
    await mkdir(logDir);
    await writeFile(target, "keep me\n");
    await symlink(target, join(logDir, "bait.stderr"));
    const { reply } = await wire.request(
      {
        op: "service_start",
        name: "bait",
        argv: ["sh", "-c", "echo gotcha >&2"],
        log_dir: "/link-logs",
      },
      5_000,
    );
    expect(reply).toMatchObject({ type: "error", code: "invalid_argument" });
    expect(String(reply.message)).toMatch(/bait\.stderr.*not a regular file/);
    expect(await readFile(target, "utf8")).toBe("keep me\n");
  });

  it("refuses a hard link or a directory at a log's name; the linked file keeps its bytes", async () => {
    const logDir = join(agent.root, "hardlink-logs");
    const target = join(agent.root, "also-precious");
    await mkdir(logDir);
    await writeFile(target, "keep me too\n");
    await link(target, join(logDir, "hard.stdout"));
    await mkdir(join(logDir, "dir.stdout"));
    for (const name of ["hard", "dir"]) {
      const { reply } = await wire.request(
        { op: "service_start", name, argv: ["echo", "gotcha"], log_dir: "/hardlink-logs" },
        5_000,
      );
      expect(reply).toMatchObject({ type: "error", code: "invalid_argument" });
      expect(String(reply.message)).toMatch(new RegExp(`${name}\\.stdout.*not a regular file`));
    }
    expect(await readFile(target, "utf8")).toBe("keep me too\n");
  });

  it("gives a service only its stdin, stdout and stderr", async () => {
    const started = await wire.result({ op: "service_start", name: "fds", argv: ["sleep", "30"] });
    const fds = await openDescriptors(Number(started.pid), "sleep");
    await wire.result({ op: "service_stop", name: "fds", grace_ms: 0 });
    expect(Object.keys(fds).sort()).toEqual(["0", "1", "2"]);
    expect(fds["0"]).toBe("/dev/null");
  });

  it("gives a shell's program only its terminal", async () => {
    const opened = await wire.result({ op: "shell_open", shell_id: "fds", argv: ["sleep", "30"] });
    const fds = await openDescriptors(Number(opened.pid), "sleep");
    await wire.result({ op: "shell_close", shell_id: "fds" });
    expect(Object.keys(fds).sort()).toEqual(["0", "1", "2"]);
    expect(new Set(Object.values(fds)).size).toBe(1);
  });

  it("opens the fallback shell when /etc/passwd is a FIFO instead of blocking on it", async () => {
    await mkdir(join(agent.root, "etc"));
    execFileSync("mkfifo", [join(agent.root, "etc/passwd")]);
    try {
      const { reply } = await wire.request({ op: "shell_open", shell_id: "fifo-passwd" }, 5_000);
      expect(reply).toMatchObject({ type: "result", shell_id: "fifo-passwd" });
      const { shells } = await wire.result({ op: "shell_list" });
      expect(shells).toMatchObject([{ shell_id: "fifo-passwd" }]);
      await wire.result({ op: "shell_close", shell_id: "fifo-passwd" });
    } finally {
      await rm(join(agent.root, "etc"), { recursive: true });
    }
  });

  // Last: it fills the service table. A dropped entry's logs can no longer be read
  // (service_logs answers not_found), so leaving them would let a loop of new names
  // fill the guest's /run (memory) without bound.
  it("removes the logs of the exited entry the 33rd service pushes out", async () => {
    const logDir = join(agent.root, "churn-logs");
    const names = Array.from({ length: 33 }, (_, i) => `churn-${i}`);
    for (const name of names) {
      await wire.result({
        op: "service_start",
        name,
        argv: ["echo", name],
        log_dir: "/churn-logs",
      });
      for (let i = 0; ; i++) {
        const { services } = await wire.result({ op: "service_list" });
        const entry = (services as { name: string; state: string }[]).find((s) => s.name === name);
        if (entry?.state === "exited") break;
        if (i > 500) throw new Error(`${name} never exited`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    const files = readdirSync(logDir).sort();
    expect(files).toHaveLength(64);
    expect(files).not.toContain("churn-0.stdout");
    expect(files).not.toContain("churn-0.stderr");
    expect(files).toContain("churn-1.stdout");
  }, 60_000);
});
