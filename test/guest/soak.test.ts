import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import type { SoakReport } from "../../scripts/soak/report.js";

/**
 * The leak soak, small: 6 clients (CLI and SDK, runs and workspace execs), some SIGKILLed
 * mid-flight. Seed 16 plans `pyro run`s killed at 0.03 s (before
 * any VM) and 3.3 s (while its VM boots) and a `workspace exec` killed at 1.7 s, among
 * clients left alone; `npm run soak -- --runs 200` is the same check at scale.
 */
function runSoak(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(resolve("node_modules/.bin/tsx"), ["scripts/soak.ts", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

describe("leak soak", () => {
  it("leaves no VM dir, process, socket, temp dir or cgroup after killed clients, and workspaces still work", async () => {
    const soak = await runSoak([
      ...["--runs", "6", "--seed", "16", "--concurrency", "3", "--workspaces", "2"],
      ...["--kill-share", "0.5", "--max-kill-ms", "5000", "--json"],
    ]);
    const report = JSON.parse(soak.stdout.trim().split("\n").pop()!) as SoakReport;
    // The figures go to the log either way: they are what a failure is debugged from.
    const figures = soak.stdout.split("\n").slice(0, -2).join("\n");
    expect(report.leaks, figures).toEqual({ after_clients: [], after_delete: [] });
    expect(report.problems, figures).toEqual([]);
    // Whether the later kills land depends on the machine's speed (under TCG they do); the
    // one at 0.03 s always does.
    expect(report.clients.killed_by_kind["cli-run"], figures).toBeGreaterThanOrEqual(1);
    expect(report.clients.finished, figures).toBeGreaterThanOrEqual(3);
    expect(report.workspace_checks.map((c) => c.problem)).toEqual([null, null]);
    expect(Object.values(report.clients.by_kind).every((n) => n > 0)).toBe(true);
    // Two workspaces and at least the two runs left alone: the ids whose cgroups are checked.
    expect(report.ids_seen).toBeGreaterThanOrEqual(4);
    expect([soak.code, report.ok]).toEqual([0, true]);
  });
});
