import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { AGENT_OPS } from "../../src/guest/ops/index.js";
import { ShimClient } from "../../src/shim/client.js";
import { eventually, processesMentioning } from "../helpers/guest.js";
import { HOST_ENVIRONMENT, hostTierHome } from "../helpers/host.js";

// The shim's rules for the agent's long-lived processes (issue 8): a service is not a
// request, so it outlives the client that started it and does not hold the idle TTL off.
const home = hostTierHome();
const pyro = new Pyro();

describe("agent services through the shim", () => {
  it("outlive the client that started them, and do not keep a workspace alive", async () => {
    const { workspace_id } = await pyro.createWorkspace({
      environment: HOST_ENVIRONMENT,
      ttl_seconds: 2,
    });
    const dir = join(home, "workspaces", workspace_id);
    const tag = `pyro-host-tier-${randomBytes(4).toString("hex")}`;
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
    expect(processesMentioning(tag)).toHaveLength(1);

    // Idle means no calls through pyro: the running service does not count.
    expect(await eventually(() => processesMentioning(dir).length === 0, 20_000)).toBe(true);
    expect((await pyro.statusWorkspace({ workspace_id })).state).toBe("stopped");
    expect(processesMentioning(tag)).toEqual([]);
    await pyro.deleteWorkspace({ workspace_id });
  });
});
