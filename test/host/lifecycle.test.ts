import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { runCli } from "../helpers/cli.js";
import { eventually, processesMentioning, processGone, vmDirs } from "../helpers/guest.js";
import { HOST_ENVIRONMENT, hostTierHome, spawnCli } from "../helpers/host.js";

// The shim's lifetime rules (TTL, ownership, teardown) around the real agent, in seconds.
const home = hostTierHome();
const pyro = new Pyro();

/** A string only this test's processes carry on their command line. */
const marker = () => `pyro-host-tier-${randomBytes(4).toString("hex")}`;

const workspaceDir = (id: string) => join(home, "workspaces", id);

describe("shim lifetime rules under the host-process driver", () => {
  it("stops an idle workspace at its ttl and keeps its files", async () => {
    const { workspace_id } = await pyro.createWorkspace({
      environment: HOST_ENVIRONMENT,
      ttl_seconds: 1,
    });
    await pyro.writeWorkspaceFile({ workspace_id, path: "keep.txt", text: "kept\n" });
    const dir = workspaceDir(workspace_id);
    expect(await eventually(() => processesMentioning(dir).length === 0, 20_000)).toBe(true);
    const status = await pyro.statusWorkspace({ workspace_id });
    expect(status.state).toBe("stopped");
    await pyro.startWorkspace({ workspace_id });
    expect((await pyro.readWorkspaceFile({ workspace_id, path: "keep.txt" })).content).toBe(
      "kept\n",
    );
    await pyro.deleteWorkspace({ workspace_id });
  });

  it("a request in flight holds off the idle ttl; it stops once idle", async () => {
    const { workspace_id } = await pyro.createWorkspace({
      environment: HOST_ENVIRONMENT,
      ttl_seconds: 1,
    });
    // Busy for three ttls: a ttl that fired meanwhile would have killed the command.
    const result = await pyro.execWorkspace({
      workspace_id,
      command: ["sh", "-c", "sleep 3; echo finished"],
    });
    expect([result.exit_code, result.stdout]).toEqual([0, "finished\n"]);
    const dir = workspaceDir(workspace_id);
    expect(await eventually(() => processesMentioning(dir).length === 0, 20_000)).toBe(true);
    expect((await pyro.statusWorkspace({ workspace_id })).state).toBe("stopped");
    await pyro.deleteWorkspace({ workspace_id });
  });

  it("runs execs from two processes at once", async () => {
    const { workspace_id } = await pyro.createWorkspace({ environment: HOST_ENVIRONMENT });
    // A barrier in /workspace: each exec marks that it runs and waits (up to 20 s) for the
    // other's mark. Execs that ran one after another would each wait in vain.
    const barrier = (i: number) =>
      `touch running-${i}; n=0; ` +
      `while [ "$(ls running-* | wc -l)" -lt 2 ] && [ $n -lt 200 ]; do sleep 0.1; n=$((n+1)); done; ` +
      `echo "${i} saw $(ls running-* | wc -l)"`;
    const results = await Promise.all(
      [1, 2].map((i) => runCli(["workspace", "exec", workspace_id, "--", "sh", "-c", barrier(i)])),
    );
    expect(results.map((r) => [r.code, r.stdout])).toEqual([
      [0, "1 saw 2\n"],
      [0, "2 saw 2\n"],
    ]);
    expect((await pyro.statusWorkspace({ workspace_id })).command_count).toBe(2);
    await pyro.deleteWorkspace({ workspace_id });
  });

  it("a vm_run whose CLI is killed is torn down with its command", async () => {
    const tag = marker();
    const cli = spawnCli(["run", HOST_ENVIRONMENT, "--", "sh", "-c", `sleep 60; : ${tag}`]);
    // The CLI's own command line carries the tag too; the command's is the one that counts.
    const command = () => processesMentioning(tag).filter((pid) => pid !== cli.pid);
    try {
      expect(await eventually(() => command().length > 0, 20_000)).toBe(true);
      expect(vmDirs(home)).toHaveLength(1);
      cli.kill("SIGKILL");
      expect(await eventually(() => vmDirs(home).length === 0, 20_000)).toBe(true);
      expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
      expect(processesMentioning(tag)).toEqual([]);
    } finally {
      cli.kill("SIGKILL");
    }
  });

  it("a killed shim takes the agent and every process it started with it", async () => {
    const { workspace_id } = await pyro.createWorkspace({ environment: HOST_ENVIRONMENT });
    const tag = marker();
    // setsid: out of the exec's process group, so only the PID namespace can still end it.
    // The exec waits for its mark: the agent kills the exec's group when the exec ends.
    const escape = `setsid sh -c 'touch escaped; sleep 60; : ${tag}' >/dev/null 2>&1 &`;
    const started = await pyro.execWorkspace({
      workspace_id,
      command: ["sh", "-c", `${escape} while [ ! -e escaped ]; do sleep 0.05; done; echo started`],
    });
    expect(started.stdout).toBe("started\n");
    expect(processesMentioning(tag)).toHaveLength(1);
    const dir = workspaceDir(workspace_id);
    const shim = JSON.parse(readFileSync(join(dir, "shim.json"), "utf8")) as {
      shim_pid: number;
      vmm_pid: number;
    };
    process.kill(shim.shim_pid, "SIGKILL");
    expect(await eventually(() => processGone(shim.vmm_pid))).toBe(true);
    expect(await eventually(() => processesMentioning(tag).length === 0)).toBe(true);
    expect(await eventually(() => processesMentioning(dir).length === 0)).toBe(true);
    expect((await pyro.statusWorkspace({ workspace_id })).state).toBe("failed");
    await pyro.deleteWorkspace({ workspace_id });
  });
});
