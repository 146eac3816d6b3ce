import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { eventually, processesMentioning } from "../helpers/guest.js";
import { HOST_ENVIRONMENT, hostTierHome } from "../helpers/host.js";

// Issue 8: a shell is not a request. It outlives the calls that drive it, and an open
// shell with a program still running in it does not keep an idle workspace alive.
const home = hostTierHome();
const pyro = new Pyro();

describe("shells and the idle TTL", () => {
  it("an open shell does not keep a workspace alive; its record goes on the next call", async () => {
    const { workspace_id } = await pyro.createWorkspace({
      environment: HOST_ENVIRONMENT,
      ttl_seconds: 2,
    });
    const dir = join(home, "workspaces", workspace_id);
    const tag = `pyro-host-shell-${randomBytes(4).toString("hex")}`;
    const { shell_id } = await pyro.openShell({ workspace_id });
    await pyro.writeShell({ workspace_id, shell_id, input: `sh -c 'sleep 300; : ${tag}'` });
    expect(await eventually(() => processesMentioning(tag).length === 1)).toBe(true);

    // Idle means no calls through pyro: the shell and its running program do not count.
    expect(await eventually(() => processesMentioning(dir).length === 0, 20_000)).toBe(true);
    expect((await pyro.statusWorkspace({ workspace_id })).state).toBe("stopped");
    expect(processesMentioning(tag)).toEqual([]);

    // The shim stopped the VM on its own, so the record outlived the shell until now.
    const record = join(dir, "shells", `${shell_id}.json`);
    expect(existsSync(record)).toBe(true);
    await expect(pyro.readShell({ workspace_id, shell_id })).rejects.toMatchObject({
      code: "not_found",
      message: expect.stringContaining("stopped"),
    });
    expect(existsSync(record)).toBe(false);
    await pyro.deleteWorkspace({ workspace_id });
  });
});
