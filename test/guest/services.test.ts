import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { runCli } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";
import { errorOf, recordAfterRunning } from "../helpers/services.js";

/**
 * Services in a real guest: the agent's process table and logs, readiness checked from
 * inside the VM, the host records across CLI processes, and the workspace lifecycle.
 * One workspace for the file (debian:12-build has python3 for the HTTP server).
 */
const home = isolatedHome();
const pyro = new Pyro();
let id = "";

const svc = (service_name: string) => ({ workspace_id: id, service_name });
const sh = (script: string) => ["sh", "-c", script];

beforeAll(async () => {
  const created = await pyro.createWorkspace({ environment: "debian:12-build", mem_mib: 512 });
  id = created.workspace_id;
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

describe("services in a real guest", () => {
  it("each readiness type waits for its service; several services run at once", async () => {
    const started = await Promise.all([
      pyro.startService({
        ...svc("files"),
        command: sh("sleep 1; touch ready.flag; exec sleep 1000"),
        readiness: { type: "file", path: "ready.flag" },
        ready_interval_ms: 200,
      }),
      pyro.startService({
        ...svc("web"),
        command: ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"],
        readiness: { type: "http", url: "http://127.0.0.1:8000/" },
        ready_interval_ms: 200,
      }),
      pyro.startService({
        ...svc("tcp"),
        command: ["python3", "-m", "http.server", "8001", "--bind", "127.0.0.1"],
        readiness: { type: "tcp", address: "127.0.0.1:8001" },
        ready_interval_ms: 200,
      }),
      pyro.startService({
        ...svc("cmd"),
        command: sh("sleep 1; echo up > up.txt; exec sleep 1000"),
        readiness: { type: "command", command: "grep -q up up.txt" },
        ready_interval_ms: 200,
      }),
    ]);
    for (const record of started) {
      expect(record.state).toBe("running");
      expect(Date.parse(record.ready_at!)).toBeGreaterThanOrEqual(Date.parse(record.started_at));
    }
    // The file and command services wrote their marker a second after starting: ready
    // then, not at once.
    const files = started[0]!;
    expect(Date.parse(files.ready_at!) - Date.parse(files.started_at)).toBeGreaterThanOrEqual(900);
    const { services } = await pyro.listServices({ workspace_id: id });
    expect(
      services
        .filter((s) => s.state === "running")
        .map((s) => s.service_name)
        .sort(),
    ).toEqual(["cmd", "files", "tcp", "web"]);
    const served = await pyro.execWorkspace({
      workspace_id: id,
      // bash: /dev/tcp is bash's, sh (dash) has none.
      command: [
        "bash",
        "-c",
        "exec 3<>/dev/tcp/127.0.0.1/8000; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; sed -n 1p <&3",
      ],
    });
    expect(served.stdout).toMatch(/^HTTP\/1\.0 200/);
    const workspace = await pyro.statusWorkspace({ workspace_id: id });
    expect(workspace.running_service_count).toBe(4);
    const logs = await pyro.logsService({ ...svc("web"), tail_lines: 5 });
    expect(logs.stderr).toContain('"GET / HTTP/1.0" 200');
  });

  it("a service that is never ready fails with the log tail and is stopped, not left behind", async () => {
    const error = await errorOf(
      pyro.startService({
        ...svc("never"),
        command: sh("echo booting-marker; echo oops-marker >&2; exec sleep 1234"),
        readiness: { type: "file", path: "never.flag" },
        ready_timeout_seconds: 2,
        ready_interval_ms: 200,
      }),
    );
    expect(error?.code).toBe("timeout");
    expect(error?.message).toContain("not ready after 2 s");
    expect(error?.message).toContain("booting-marker");
    expect(error?.message).toContain("oops-marker");
    const record = await pyro.statusService(svc("never"));
    expect(record.state).toBe("stopped");
    expect(record.stop_reason).toMatch(/not ready after 2 s/);
    // No `sleep 1234` is left in the guest (the bracket keeps grep from matching itself).
    const left = await pyro.execWorkspace({
      workspace_id: id,
      command: sh("cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -o 'sleep 123[4]' | wc -l"),
    });
    expect(left.stdout.trim()).toBe("0");
  });

  it("a crashing service is recorded with its exit code, and its logs stay readable", async () => {
    await pyro.startService({ ...svc("crash"), command: sh("echo bye-marker >&2; exit 7") });
    const record = await recordAfterRunning(pyro, svc("crash"), 200);
    expect(record).toMatchObject({ state: "exited", exit_code: 7, stop_reason: null });
    expect(record.ended_at).not.toBeNull();
    const logs = await pyro.logsService(svc("crash"));
    expect(logs.stderr).toBe("bye-marker\n");
    // An exited name can be started again.
    const again = await pyro.startService({ ...svc("crash"), command: ["sleep", "1000"] });
    expect(again.state).toBe("running");
    await pyro.stopService(svc("crash"));
  });

  it("stop escalates TERM to KILL for a service that ignores TERM", async () => {
    await pyro.startService({
      ...svc("stubborn"),
      command: sh('trap "" TERM; touch stubborn.ready; sleep 100'),
      // Ready once the trap is set: a TERM before that would end it at once.
      readiness: { type: "file", path: "stubborn.ready" },
      ready_interval_ms: 100,
    });
    const stopped = await pyro.stopService(svc("stubborn"));
    expect(stopped).toMatchObject({
      state: "stopped",
      signal: "KILL",
      stop_reason: "stop requested",
    });
    const polite = await pyro.stopService(svc("files"));
    expect(polite).toMatchObject({ state: "stopped", signal: "TERM" });
  });

  it("a service started by one CLI process is listed and stopped by another", async () => {
    const started = await runCli(
      ["workspace", "service", "start", id, "from-cli", "--json", "--", "sleep", "1000"],
      { PYRO_HOME: home },
    );
    expect(started.code, started.stderr).toBe(0);
    expect(JSON.parse(started.stdout)).toMatchObject({
      service_name: "from-cli",
      state: "running",
    });
    const listed = await runCli(["workspace", "service", "list", id, "--json"], {
      PYRO_HOME: home,
    });
    const names = (
      JSON.parse(listed.stdout) as { services: { service_name: string; state: string }[] }
    ).services
      .filter((s) => s.state === "running")
      .map((s) => s.service_name);
    expect(names).toContain("from-cli");
    const stopped = await runCli(["workspace", "service", "stop", id, "from-cli"], {
      PYRO_HOME: home,
    });
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toMatch(/state: stopped/);
  });

  it("bad input: unknown name, duplicate running name, bad name, cwd outside /workspace", async () => {
    expect((await errorOf(pyro.statusService(svc("nope"))))?.code).toBe("not_found");
    expect((await errorOf(pyro.stopService(svc("nope"))))?.code).toBe("not_found");
    const duplicate = await errorOf(pyro.startService({ ...svc("web"), command: ["true"] }));
    expect(duplicate?.code).toBe("busy");
    expect(duplicate?.message).toMatch(/already running/);
    const badName = await errorOf(pyro.startService({ ...svc("a/b"), command: ["true"] }));
    expect(badName?.code).toBe("invalid_argument");
    const outside = await errorOf(
      pyro.startService({ ...svc("x"), command: ["true"], cwd: "/etc" }),
    );
    expect(outside?.code).toBe("invalid_argument");
  });

  it("workspace stop stops every service and the records say so", async () => {
    const before = await pyro.listServices({ workspace_id: id });
    const running = before.services.filter((s) => s.state === "running").map((s) => s.service_name);
    expect(running.length).toBeGreaterThanOrEqual(3);
    const stopped = await pyro.stopWorkspace({ workspace_id: id });
    expect(stopped.running_service_count).toBe(0);
    const after = await pyro.listServices({ workspace_id: id });
    for (const name of running) {
      const record = after.services.find((s) => s.service_name === name);
      expect(record, name).toMatchObject({ state: "stopped", stop_reason: "workspace stop" });
    }
  });
});

describe("services and the idle TTL", () => {
  it("a running service does not keep its workspace from pausing, and survives the pause", async () => {
    const ws = await pyro.createWorkspace({
      environment: "debian:12-base",
      mem_mib: 256,
      ttl_seconds: 3,
    });
    try {
      await pyro.startService({
        workspace_id: ws.workspace_id,
        service_name: "idle",
        command: ["sleep", "1000"],
      });
      const pausedByTtl = await eventually(
        () => processesMentioning(ws.workspace_id).length === 0,
        30_000,
      );
      expect(pausedByTtl).toBe(true);
      expect((await pyro.statusWorkspace({ workspace_id: ws.workspace_id })).state).toBe("paused");
      // The service lives on in the saved VM: an exec resumes it and finds it running.
      const ps = await pyro.execWorkspace({
        workspace_id: ws.workspace_id,
        command: [
          "sh",
          "-c",
          'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = sleep ] && echo running && break; done',
        ],
      });
      expect(ps.stdout).toBe("running\n");
      const record = await pyro.statusService({
        workspace_id: ws.workspace_id,
        service_name: "idle",
      });
      expect(record.state).toBe("running");
    } finally {
      await pyro.deleteWorkspace({ workspace_id: ws.workspace_id }).catch(() => {});
    }
  });
});
