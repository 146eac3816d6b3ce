import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { withLock } from "../../src/util/lock.js";
import { sleep } from "../../src/util/process.js";

const HOLDER = resolve("test/fixtures/lock-holder.ts");

function deadPid(): number {
  return spawnSync("true").pid!;
}

let dir: string;
let lockPath: string;
let logPath: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pyro-lock-"));
  lockPath = join(dir, "state.lock");
  logPath = join(dir, "events.log");
  writeFileSync(logPath, "");
});
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** A separate node process taking the lock (see test/fixtures/lock-holder.ts). */
function holder(rounds: number, hold: number | "forever"): ChildProcess {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", HOLDER, lockPath, logPath, String(rounds), String(hold)],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  children.push(child);
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((done, fail) => {
    child.on("error", fail);
    child.on("exit", (code) =>
      code === 0 ? done(code) : fail(new Error(`exit ${code}: ${stderr}`)),
    );
  });
}

const logLines = () => readFileSync(logPath, "utf8").trim().split("\n").filter(Boolean);
const count = (event: string) => logLines().filter((line) => line.startsWith(`${event} `)).length;

/** The log's events from line `from`; asserts no two processes were ever inside at once. */
function events(from = 0): string[][] {
  const parsed = logLines()
    .slice(from)
    .map((line) => line.split(" "))
    .filter(([event]) => event !== "start");
  let inside: string | undefined;
  for (const [index, [event, pid]] of parsed.entries()) {
    if (event === "enter") {
      expect(
        inside,
        `line ${index + 1}: ${pid} entered while ${inside} held the lock`,
      ).toBeUndefined();
      inside = pid;
    } else {
      expect(pid, `line ${index + 1}`).toBe(inside);
      inside = undefined;
    }
  }
  return parsed;
}

describe("cross-process lock", () => {
  it("lets exactly one of six processes in at a time, starting from a dead holder's lock", async () => {
    writeFileSync(lockPath, String(deadPid()));
    const runs = Array.from({ length: 6 }, () => exited(holder(4, 15)));
    await Promise.all(runs);
    const log = events();
    expect(log.filter(([event]) => event === "enter")).toHaveLength(24);
    expect(new Set(log.map(([, pid]) => pid)).size).toBe(6);
    expect(readdirSync(dir).sort()).toEqual(["events.log"]);
  }, 60_000);

  it("is taken over from a holder killed with SIGKILL while holding it", async () => {
    const doomed = holder(1, "forever");
    while (count("enter") === 0) await sleep(20);
    const waiters = Array.from({ length: 4 }, () => exited(holder(2, 10)));
    while (count("start") < 5) await sleep(20);
    await sleep(500); // several polls: all four must stay queued behind a live holder
    expect(count("enter"), "a waiter took a live holder's lock").toBe(1);
    doomed.kill("SIGKILL");
    await Promise.all(waiters);
    const firstEnter = logLines().findIndex((line) => line.startsWith("enter "));
    const log = events(firstEnter + 1); // the killed holder never left
    expect(log.filter(([event]) => event === "enter")).toHaveLength(8);
    expect(readdirSync(dir).sort()).toEqual(["events.log"]);
  }, 60_000);

  it("lets one holder in at a time among waiters of one process too", async () => {
    writeFileSync(lockPath, String(deadPid()));
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      Array.from({ length: 8 }, () =>
        withLock(lockPath, async () => {
          inside += 1;
          maxInside = Math.max(maxInside, inside);
          await sleep(20);
          inside -= 1;
        }),
      ),
    );
    expect(maxInside).toBe(1);
    expect(readdirSync(dir).sort()).toEqual(["events.log"]);
  });

  it("gives up with conflict, naming the holder, when a live process keeps it", async () => {
    writeFileSync(lockPath, String(process.ppid));
    await expect(withLock(lockPath, async () => {}, { timeoutMs: 200 })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining(String(process.ppid)),
    });
  });
});
