import { createServer, type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { sleep } from "../../src/util/process.js";
import { eventually, processesMentioning } from "../helpers/guest.js";
import { HOST_ENVIRONMENT, hostTierHome } from "../helpers/host.js";
import { errorOf, recordAfterRunning } from "../helpers/services.js";

/**
 * The service manager through the real shim and agent (host-process VMM): records,
 * readiness, stop escalation and the workspace lifecycle, in seconds. The same behaviour
 * in a real guest is test/guest/services.test.ts's proof.
 */
const home = hostTierHome();
const pyro = new Pyro();
let id = "";
const svc = (service_name: string) => ({ workspace_id: id, service_name });
const sh = (script: string) => ["sh", "-c", script];

/** A port nothing listens on right now (services here share the host's network). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  id = (await pyro.createWorkspace({ environment: HOST_ENVIRONMENT })).workspace_id;
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

describe("services through the real shim and agent", () => {
  it("readiness by file, command and http; records and counts follow", async () => {
    const port = await freePort();
    const [files, cmd, tcp] = await Promise.all([
      pyro.startService({
        ...svc("files"),
        command: sh("sleep 0.5; touch ready.flag; exec sleep 300"),
        readiness: { type: "file", path: "ready.flag" },
        ready_interval_ms: 100,
      }),
      pyro.startService({
        ...svc("cmd"),
        command: sh("sleep 0.5; echo up > up.txt; exec sleep 300"),
        readiness: { type: "command", command: "grep -q up up.txt" },
        ready_interval_ms: 100,
      }),
      pyro.startService({
        ...svc("tcp"),
        command: ["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1"],
        readiness: { type: "http", url: `http://127.0.0.1:${port}/` },
        ready_interval_ms: 100,
      }),
    ]);
    for (const r of [files, cmd, tcp]) expect(r.state, r.service_name).toBe("running");
    expect(Date.parse(files.ready_at!) - Date.parse(files.started_at)).toBeGreaterThanOrEqual(400);
    const status = await pyro.statusWorkspace({ workspace_id: id });
    expect([status.service_count, status.running_service_count]).toEqual([3, 3]);
  });

  it("never ready: timeout error with the log tail, and the service is stopped", async () => {
    const error = await errorOf(
      pyro.startService({
        ...svc("never"),
        command: sh("echo booting-marker; echo oops-marker >&2; exec sleep 300"),
        readiness: { type: "file", path: "never.flag" },
        ready_timeout_seconds: 1,
        ready_interval_ms: 100,
      }),
    );
    expect(error?.code).toBe("timeout");
    expect(error?.message).toMatch(/booting-marker[\s\S]*oops-marker/);
    expect(await pyro.statusService(svc("never"))).toMatchObject({
      state: "stopped",
      signal: "TERM",
    });
  });

  it("a crash is recorded with its exit code; logs keep its output", async () => {
    await pyro.startService({ ...svc("crash"), command: sh("echo bye-marker >&2; exit 7") });
    const record = await recordAfterRunning(pyro, svc("crash"), 100);
    expect(record).toMatchObject({ state: "exited", exit_code: 7 });
    expect((await pyro.logsService(svc("crash"))).stderr).toBe("bye-marker\n");
  });

  it("stop sends TERM, then KILL to a service that ignores it; duplicates are busy", async () => {
    await pyro.startService({
      ...svc("stubborn"),
      command: sh('trap "" TERM; touch stubborn.ready; sleep 100'),
      // Ready once the trap is set: a TERM before that would end it at once.
      readiness: { type: "file", path: "stubborn.ready" },
      ready_interval_ms: 100,
    });
    const duplicate = await errorOf(pyro.startService({ ...svc("stubborn"), command: ["true"] }));
    expect(duplicate?.code).toBe("busy");
    expect(duplicate?.message).toMatch(/already running/);
    expect(await pyro.stopService(svc("stubborn"))).toMatchObject({
      state: "stopped",
      signal: "KILL",
      stop_reason: "stop requested",
    });
  });

  it("logs tail the last lines of each stream", async () => {
    await pyro.startService({
      ...svc("chatty"),
      command: sh("for i in $(seq 1 500); do echo line-$i; done; exec sleep 300"),
    });
    await sleep(300);
    const logs = await pyro.logsService({ ...svc("chatty"), tail_lines: 3 });
    expect(logs.stdout).toBe("line-498\nline-499\nline-500\n");
    expect(logs.stdout_truncated).toBe(true);
  });

  it("workspace stop stops every running service and records why", async () => {
    const { services } = await pyro.listServices({ workspace_id: id });
    const running = services.filter((s) => s.state === "running").map((s) => s.service_name);
    expect(running.sort()).toEqual(["chatty", "cmd", "files", "tcp"]);
    const stopped = await pyro.stopWorkspace({ workspace_id: id });
    expect(stopped.running_service_count).toBe(0);
    const after = await pyro.listServices({ workspace_id: id });
    for (const name of running) {
      expect(after.services.find((s) => s.service_name === name)).toMatchObject({
        state: "stopped",
        stop_reason: "workspace stop",
      });
    }
    // Logs went with the VM; the records stay.
    expect((await errorOf(pyro.logsService(svc("files"))))?.code).toBe("conflict");
  });

  it("workspace reset stops the services of the old VM too", async () => {
    await pyro.startWorkspace({ workspace_id: id });
    // The VM is new: records of the old one stay stopped, and the name is free again.
    expect((await pyro.statusService(svc("files"))).state).toBe("stopped");
    await pyro.startService({ ...svc("files"), command: ["sleep", "300"] });
    const reset = await pyro.resetWorkspace({ workspace_id: id });
    expect([reset.service_count, reset.running_service_count]).toEqual([7, 0]);
    expect(await pyro.statusService(svc("files"))).toMatchObject({
      state: "stopped",
      stop_reason: "workspace reset",
      signal: "TERM",
    });
  });
});

describe("services and the idle TTL", () => {
  it("a running service does not keep its workspace alive; its record says the VM ended it", async () => {
    const ws = await pyro.createWorkspace({ environment: HOST_ENVIRONMENT, ttl_seconds: 2 });
    const idle = { workspace_id: ws.workspace_id, service_name: "idle" };
    await pyro.startService({ ...idle, command: ["sleep", "300"] });
    const dir = `${home}/workspaces/${ws.workspace_id}`;
    expect(await eventually(() => processesMentioning(dir).length === 0, 20_000)).toBe(true);
    expect((await pyro.statusWorkspace({ workspace_id: ws.workspace_id })).state).toBe("stopped");
    const record = await pyro.statusService(idle);
    expect(record.state).toBe("stopped");
    expect(record.stop_reason).toMatch(/workspace is stopped/);
    await pyro.deleteWorkspace({ workspace_id: ws.workspace_id });
  });
});
