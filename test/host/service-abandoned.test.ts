import { once } from "node:events";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { sleep } from "../../src/util/process.js";
import { eventually, processesMentioning } from "../helpers/guest.js";
import { HOST_ENVIRONMENT, hostTierHome, spawnCli } from "../helpers/host.js";

/**
 * A CLI killed while `service start` waits for readiness (Ctrl-C, a client's timeout):
 * the real CLI process, shim and agent. Its record must not stay `starting` for good.
 */
const home = hostTierHome();
const pyro = new Pyro();
let id = "";

beforeAll(async () => {
  id = (await pyro.createWorkspace({ environment: HOST_ENVIRONMENT })).workspace_id;
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

it("a start whose CLI was killed mid-wait is stopped when next read, not left starting", async () => {
  const tag = `abandoned-${process.pid}`;
  const cli = spawnCli([
    "workspace",
    "service",
    "start",
    id,
    "web",
    "--ready-file",
    "never.flag",
    "--ready-timeout-seconds",
    "600",
    "--",
    "sh",
    "-c",
    "sleep 300",
    tag,
  ]);
  const exited = once(cli, "exit");
  let state: string | undefined;
  for (let i = 0; i < 150 && state !== "starting"; i++) {
    await sleep(100);
    state = (
      await pyro.statusService({ workspace_id: id, service_name: "web" }).catch(() => undefined)
    )?.state;
  }
  expect(state).toBe("starting");
  cli.kill("SIGKILL");
  await exited;
  const record = await pyro.statusService({ workspace_id: id, service_name: "web" });
  expect(record.state).toBe("stopped");
  expect(record.stop_reason).toMatch(/abandoned/);
  expect(await eventually(() => processesMentioning(tag).length === 0)).toBe(true);
  const workspace = await pyro.statusWorkspace({ workspace_id: id });
  expect(workspace.running_service_count).toBe(0);
});
