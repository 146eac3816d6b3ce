import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { AGENT_OPS } from "../../src/guest/ops/index.js";
import { readShellOutput } from "../../src/guest/shells.js";
import { ShimClient } from "../../src/shim/client.js";
import { sleep } from "../../src/util/process.js";
import { eventually, processesMentioning } from "../helpers/guest.js";
import { HOST_ENVIRONMENT, hostTierHome } from "../helpers/host.js";

// The shim's rules for the agent's long-lived processes (issue 8): services and shells are
// not requests, so they outlive the client that started them and do not hold the idle TTL
// off (a forgotten one must not pin a workspace).
const home = hostTierHome();
const pyro = new Pyro();

const newTag = () => `pyro-host-tier-${randomBytes(4).toString("hex")}`;

async function idleWorkspace(): Promise<{ workspace_id: string; dir: string }> {
  const { workspace_id } = await pyro.createWorkspace({
    environment: HOST_ENVIRONMENT,
    ttl_seconds: 2,
  });
  return { workspace_id, dir: join(home, "workspaces", workspace_id) };
}

/** Waits for the idle TTL to stop the workspace, then deletes it. */
async function expectStoppedByTtl(workspace_id: string, dir: string, tag: string) {
  expect(await eventually(() => processesMentioning(dir).length === 0, 20_000)).toBe(true);
  expect((await pyro.statusWorkspace({ workspace_id })).state).toBe("stopped");
  expect(processesMentioning(tag)).toEqual([]);
  await pyro.deleteWorkspace({ workspace_id });
}

describe("agent services and shells through the shim", () => {
  it("a service outlives the client that started it, and does not keep a workspace alive", async () => {
    const { workspace_id, dir } = await idleWorkspace();
    const tag = newTag();
    const starter = await ShimClient.connect(dir);
    const started = await starter.request(AGENT_OPS.service_start, {
      name: "sleeper",
      argv: ["sh", "-c", `sleep 300; : ${tag}`],
    });
    expect(started.name).toBe("sleeper");
    starter.destroy();

    const other = await ShimClient.connect(dir);
    const listed = await other.request(AGENT_OPS.service_list, {});
    other.destroy();
    expect(listed.services).toEqual([
      expect.objectContaining({ name: "sleeper", state: "running" }),
    ]);
    // The reply comes after fork, maybe before the child's exec shows the tag.
    expect(await eventually(() => processesMentioning(tag).length === 1)).toBe(true);

    // Idle means no calls through pyro: the running service does not count.
    await expectStoppedByTtl(workspace_id, dir, tag);
  });

  it("a shell outlives the client that opened it, and does not keep a workspace alive", async () => {
    const { workspace_id, dir } = await idleWorkspace();
    const tag = newTag();
    const opener = await ShimClient.connect(dir);
    // The outer sh carries the tag on its command line; the inner one is the shell.
    await opener.request(AGENT_OPS.shell_open, {
      shell_id: "sh-host1",
      argv: ["sh", "-c", `sh; : ${tag}`],
    });
    await opener.request(AGENT_OPS.shell_write, {
      shell_id: "sh-host1",
      data: "echo $((6*7))-ok\n",
    });
    opener.destroy();

    const reader = await ShimClient.connect(dir);
    let output = "";
    for (let i = 0; i < 100 && !output.includes("42-ok"); i++) {
      const read = await readShellOutput(reader, { shell_id: "sh-host1", cursor: 0 });
      expect(read.state).toBe("running");
      output = read.data.toString("utf8");
      await sleep(50);
    }
    reader.destroy();
    expect(output).toContain("42-ok");
    expect(processesMentioning(tag)).toHaveLength(1);

    await expectStoppedByTtl(workspace_id, dir, tag);
  });
});
