import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { CLI_ENTRY } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";

const home = isolatedHome();
const pyro = new Pyro();

function cliExec(id: string, script: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [CLI_ENTRY, "workspace", "exec", id, "--timeout-seconds", "60", "--", "sh", "-c", script],
      {
        stdio: ["ignore", "pipe", "ignore"],
      },
    );
    let stdout = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.on("close", (code) => resolve({ code, stdout }));
  });
}

describe("workspace lifecycle rules", () => {
  it("runs execs from several processes at once and numbers each one", async () => {
    const { workspace_id } = await pyro.createWorkspace({
      environment: "debian:12-base",
      mem_mib: 256,
    });
    // A barrier in the shared /workspace: each exec marks that it runs, then waits (up to
    // 30 s) until all three marks exist, and prints how many it saw. Execs that ran one
    // after another would each wait in vain and print fewer than 3.
    const barrier = (i: number) =>
      `touch running-${i}; n=0; ` +
      `while [ "$(ls running-* | wc -l)" -lt 3 ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done; ` +
      `echo ${i} > f${i}; echo "${i} saw $(ls running-* | wc -l)"`;
    const results = await Promise.all([1, 2, 3].map((i) => cliExec(workspace_id, barrier(i))));
    expect(results.map((r) => [r.code, r.stdout])).toEqual([
      [0, "1 saw 3\n"],
      [0, "2 saw 3\n"],
      [0, "3 saw 3\n"],
    ]);
    const logs = await pyro.logsWorkspace({ workspace_id });
    expect(logs.entries.map((e) => e.sequence).sort()).toEqual([1, 2, 3]);
    expect((await pyro.statusWorkspace({ workspace_id })).command_count).toBe(3);
    await pyro.deleteWorkspace({ workspace_id });
  });

  it("pauses an idle workspace at its ttl (no process left) and keeps its files", async () => {
    const { workspace_id } = await pyro.createWorkspace({
      environment: "debian:12-base",
      mem_mib: 256,
      ttl_seconds: 3,
    });
    await pyro.writeWorkspaceFile({ workspace_id, path: "keep.txt", text: "kept\n" });
    const paused = await eventually(
      () => processesMentioning(`${home}/workspaces/${workspace_id}`).length === 0,
      30_000,
    );
    expect(paused).toBe(true);
    const status = await pyro.statusWorkspace({ workspace_id });
    expect(status.state).toBe("paused");
    await pyro.startWorkspace({ workspace_id });
    expect((await pyro.readWorkspaceFile({ workspace_id, path: "keep.txt" })).content).toBe(
      "kept\n",
    );
    await pyro.deleteWorkspace({ workspace_id });
    expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
  });
});
