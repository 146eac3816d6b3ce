import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import type { ServiceRecordValue } from "../../src/contract/services.js";
import type {
  AgentService,
  ProbeResult,
  ServiceAgent,
  StartRequest,
} from "../../src/manager/service-agent.js";
import { AGENT_OPS } from "../../src/guest/ops/index.js";
import { reconcileRecord } from "../../src/manager/service-records.js";
import { ServiceManager, type ServiceHost } from "../../src/manager/services.js";
import { loadWorkspace, type WorkspaceRecord } from "../../src/manager/workspace-store.js";
import { parsePublish, readinessFlag } from "../../src/cli/commands/workspace/service.js";

/**
 * The service manager's own rules (records, reconciliation, readiness failures, refusals)
 * against a stand-in agent that keeps a table like the real one. That the real agent and
 * guest behave so is test/guest/services.test.ts's job.
 */
class FakeAgent implements ServiceAgent {
  table = new Map<string, AgentService>();
  calls: string[] = [];
  nextPid = 100;
  probeAnswer: (argv: string[]) => ProbeResult = () => ({ exit_code: 0, output: "" });
  logText = { stdout: "listening\n", stderr: "warning: x\n" };
  unreachable = false;

  private check(op: string) {
    this.calls.push(op);
    if (this.unreachable) throw new PyroError("unavailable", "the VM's supervisor is not running");
  }

  async start(request: StartRequest) {
    this.check("start");
    if (this.table.get(request.name)?.state === "running")
      throw new PyroError("busy", `service ${request.name} is already running`);
    const entry: AgentService = {
      name: request.name,
      pid: this.nextPid++,
      state: "running",
      exit_code: null,
      signal: null,
      started_at_ms: Date.now(),
      ended_at_ms: null,
    };
    this.table.set(request.name, entry);
    return { pid: entry.pid, started_at_ms: entry.started_at_ms };
  }
  async list() {
    this.check("list");
    return [...this.table.values()];
  }
  async stop(name: string) {
    this.check("stop");
    const entry = this.table.get(name);
    if (!entry) throw new PyroError("not_found", `no service ${name}`);
    const wasRunning = entry.state === "running";
    if (wasRunning) this.exit(name, null, "TERM");
    return {
      type: "result" as const,
      name,
      state: "exited" as const,
      exit_code: entry.exit_code,
      signal: entry.signal,
      killed: false,
    };
  }
  async logs(name: string) {
    this.check("logs");
    if (!this.table.has(name)) throw new PyroError("not_found", `no service named ${name}`);
    return { ...this.logText, stdout_truncated: false, stderr_truncated: false };
  }
  async probe(argv: string[]) {
    this.check("probe");
    return this.probeAnswer(argv);
  }
  /** Host ports forwarded now; `takenPorts` answer conflict as the shim does. */
  forwards = new Map<number, number>();
  takenPorts = new Set<number>();
  nextHostPort = 40000;
  async publish(guestPort: number, hostPort: number | null) {
    this.check("publish");
    const port = hostPort ?? this.nextHostPort++;
    if (this.takenPorts.has(port) || this.forwards.has(port))
      throw new PyroError("conflict", `host port 127.0.0.1:${port} cannot be published`);
    this.forwards.set(port, guestPort);
    return { guest_port: guestPort, host_port: port, host_address: "127.0.0.1" };
  }
  async unpublish(hostPort: number) {
    this.check("unpublish");
    this.forwards.delete(hostPort);
  }
  exit(name: string, code: number | null, signal: string | null = null) {
    const entry = this.table.get(name)!;
    Object.assign(entry, { state: "exited", exit_code: code, signal, ended_at_ms: Date.now() });
  }
}

const ID = "ws_0123456789ab";
let home: string;
let agent: FakeAgent;
let state: WorkspaceRecord["state"];
let services: ServiceManager;

function writeWorkspace(network_policy = "off") {
  const dir = join(home, "workspaces", ID);
  mkdirSync(dir, { recursive: true });
  const record = {
    workspace_id: ID,
    state: "started",
    network_policy,
    service_count: 0,
    running_service_count: 0,
  };
  writeFileSync(join(dir, "record.json"), JSON.stringify(record));
}

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "pyro-services-unit-"));
  process.env.PYRO_HOME = home;
  writeWorkspace();
  agent = new FakeAgent();
  state = "started";
  const host: ServiceHost = {
    status: async () => ({ ...(await loadWorkspace(ID)), state }),
    requireStarted: async () => {
      if (state !== "started") throw new PyroError("conflict", `workspace ${ID} is ${state}`);
      return loadWorkspace(ID);
    },
    withAgent: (_id, fn) => fn(agent),
    touch: async () => {},
  };
  services = new ServiceManager(host, { stopGraceMs: 10 });
});

afterEach(() => {
  delete process.env.PYRO_HOME;
  rmSync(home, { recursive: true, force: true });
});

const start = (extra: Record<string, unknown> = {}) =>
  services.start({ workspace_id: ID, service_name: "web", command: ["srv"], ...extra });
const counts = async () => {
  const r = await loadWorkspace(ID);
  return [r.service_count, r.running_service_count];
};

describe("starting a service", () => {
  it("without readiness: running at once, recorded on disk, counted in the workspace", async () => {
    const record = await start({ cwd: "app" });
    expect(record).toMatchObject({
      state: "running",
      cwd: "/workspace/app",
      pid: 100,
      exit_code: null,
      stop_reason: null,
    });
    expect(record.ready_at).toBe(record.started_at);
    const onDisk = JSON.parse(
      readFileSync(join(home, "workspaces", ID, "services", "web.json"), "utf8"),
    );
    expect(onDisk).toEqual(record);
    expect(await counts()).toEqual([1, 1]);
  });

  it("with readiness: waits for the check, then running with ready_at", async () => {
    let checks = 0;
    agent.probeAnswer = () => ({ exit_code: ++checks >= 3 ? 0 : 1, output: "refused" });
    const record = await start({
      readiness: { type: "tcp", address: "127.0.0.1:8000" },
      ready_interval_ms: 50,
    });
    expect(checks).toBe(3);
    expect(record.state).toBe("running");
    expect(record.ready_at).not.toBeNull();
  });

  it("not ready in time: stopped, recorded why, and the error quotes the check and the log tail", async () => {
    agent.probeAnswer = () => ({ exit_code: 1, output: "connection refused" });
    const error = await start({
      readiness: { type: "http", url: "http://127.0.0.1:8000/" },
      ready_timeout_seconds: 1,
      ready_interval_ms: 200,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PyroError);
    expect((error as PyroError).code).toBe("timeout");
    const message = (error as PyroError).message;
    expect(message).toMatch(/not ready after 1 s .*it was stopped/);
    expect(message).toContain("connection refused");
    expect(message).toContain("listening");
    expect(message).toContain("warning: x");
    expect(agent.table.get("web")?.state).toBe("exited");
    const record = await services.status({ workspace_id: ID, service_name: "web" });
    expect(record).toMatchObject({ state: "stopped", signal: "TERM" });
    expect(record.stop_reason).toMatch(/^not ready after 1 s/);
    expect(await counts()).toEqual([1, 0]);
  });

  it("a failed start quotes a bounded log tail, however long the service's lines are", async () => {
    agent.logText = { stdout: `${"x".repeat(1 << 20)}END`, stderr: "y".repeat(1 << 20) };
    agent.probeAnswer = () => ({ exit_code: 1, output: "refused" });
    const error = (await start({
      readiness: { type: "tcp", address: "127.0.0.1:8000" },
      ready_timeout_seconds: 1,
      ready_interval_ms: 500,
    }).catch((e: unknown) => e)) as PyroError;
    expect(error.code).toBe("timeout");
    expect(error.message).toContain("END");
    expect(error.message.length).toBeLessThan(20_000);
  });

  it("a service that dies while waiting fails at once with its exit code", async () => {
    agent.probeAnswer = () => {
      agent.exit("web", 2);
      return { exit_code: 1, output: "no file" };
    };
    const error = (await start({
      readiness: { type: "file", path: "ready" },
      ready_timeout_seconds: 600,
    }).catch((e: unknown) => e)) as PyroError;
    expect(error.code).toBe("guest_error");
    expect(error.message).toMatch(/ended \(exit code 2\) before it was ready/);
    expect(agent.calls.filter((c) => c === "probe")).toHaveLength(1);
    const record = await services.status({ workspace_id: ID, service_name: "web" });
    expect(record).toMatchObject({ state: "exited", exit_code: 2 });
  });

  it("a failed start does not overwrite the record of a newer start of the same name", async () => {
    // A's service dies while A waits; B (another process) starts the name again meanwhile.
    let second: ServiceRecordValue | undefined;
    agent.probe = async () => {
      agent.calls.push("probe");
      if (!second) {
        agent.exit("web", 1);
        second = await start();
      }
      return { exit_code: 1, output: "no file" };
    };
    const error = (await start({ readiness: { type: "file", path: "ready" } }).catch(
      (e: unknown) => e,
    )) as PyroError;
    expect(error.code).toBe("guest_error");
    expect(second).toMatchObject({ state: "running", pid: 101 });
    const record = await services.status({ workspace_id: ID, service_name: "web" });
    expect(record).toMatchObject({ state: "running", pid: 101 });
    expect(await counts()).toEqual([1, 1]);
  });

  it("a failed start leaves the waiter of a newer start of the same name alone", async () => {
    let probes = 0;
    agent.probe = async () => {
      agent.calls.push("probe");
      if (++probes > 1) return new Promise<ProbeResult>(() => {}); // B waits on
      agent.exit("web", 1);
      void start({ readiness: { type: "file", path: "ready" } });
      await vi.waitFor(() => expect(probes).toBe(2));
      return { exit_code: 1, output: "no file" };
    };
    await expect(start({ readiness: { type: "file", path: "ready" } })).rejects.toMatchObject({
      code: "guest_error",
    });
    const record = await services.status({ workspace_id: ID, service_name: "web" });
    expect(record).toMatchObject({ state: "starting", pid: 101 });
  });

  it("a stop from another process during the readiness wait is not undone by the waiter", async () => {
    let stopped: ServiceRecordValue | undefined;
    agent.probe = async () => {
      agent.calls.push("probe");
      // The check passes just as someone else stops the service.
      stopped = await services.stop({ workspace_id: ID, service_name: "web" });
      return { exit_code: 0, output: "" };
    };
    const returned = await start({ readiness: { type: "file", path: "ready" } });
    expect(stopped).toMatchObject({ state: "stopped", stop_reason: "stop requested" });
    const record = await services.status({ workspace_id: ID, service_name: "web" });
    expect(record).toMatchObject({ state: "stopped", stop_reason: "stop requested" });
    expect(returned).toEqual(record);
    expect(await counts()).toEqual([1, 0]);
  });

  it("a service started by a CLI killed before it kept a record can be stopped, then started again", async () => {
    await agent.start({ name: "web", argv: ["srv"], cwd: "/workspace" });
    await expect(start()).rejects.toMatchObject({ code: "busy" });
    const stopped = await services.stop({ workspace_id: ID, service_name: "web" });
    expect(stopped).toMatchObject({ state: "stopped", pid: 100, signal: "TERM" });
    expect(stopped.stop_reason).toMatch(/no record/);
    expect(agent.table.get("web")?.state).toBe("exited");
    expect(await start()).toMatchObject({ state: "running", pid: 101 });
  });

  it("a duplicate running name is busy, with the workspace and what to do", async () => {
    await start();
    const error = (await start().catch((e: unknown) => e)) as PyroError;
    expect(error.code).toBe("busy");
    expect(error.message).toContain(ID);
    expect(error.message).toMatch(/already running .* stop it first/);
  });

  it.each([
    [{ service_name: "../etc" }, "invalid_argument", /service_name/],
    [{ service_name: "-x" }, "invalid_argument", /service_name/],
    [{ cwd: "/etc" }, "invalid_argument", /cwd .* outside \/workspace/],
    [{ cwd: "../up" }, "invalid_argument", /cwd/],
    [{ command: [] }, "invalid_argument", /command/],
    [{ readiness: { type: "tcp", address: "nope" } }, "invalid_argument", /HOST:PORT/],
    [{ readiness: { type: "tcp", address: "127.0.0.1:99999" } }, "invalid_argument", /port/],
    [{ readiness: { type: "tcp", address: "127.0.0.1:0" } }, "invalid_argument", /port/],
    [{ readiness: { type: "http", url: "http://127.0.0.1:99999/" } }, "invalid_argument", /url/],
    [{ readiness: { type: "http", url: "http://[::1/" } }, "invalid_argument", /url/],
    [{ readiness: { type: "http", url: "http://a%zz/" } }, "invalid_argument", /url/],
    [{ ready_interval_ms: -5 }, "invalid_argument", /ready_interval_ms/],
    [{ published_ports: [{ guest_port: 80 }] }, "invalid_argument", /egress\+published-ports/],
    [{ published_ports: [{ guest_port: 0 }] }, "invalid_argument", /guest_port/],
    [{ published_ports: [{ guest_port: 80, host_port: 65536 }] }, "invalid_argument", /host_port/],
    [
      {
        published_ports: [
          { guest_port: 80, host_port: 8080 },
          { guest_port: 81, host_port: 8080 },
        ],
      },
      "invalid_argument",
      /host port 8080 is published twice/,
    ],
    [{ secret_env: { TOKEN: "t" } }, "invalid_argument", /unknown secret "t"/],
  ])("refuses %j before any guest work", async (extra, code, pattern) => {
    const error = (await start(extra).catch((e: unknown) => e)) as PyroError;
    expect(error.code).toBe(code);
    expect(error.message).toMatch(pattern);
    expect(agent.calls).toEqual([]);
  });

  describe("published ports (under egress+published-ports)", () => {
    beforeEach(() => writeWorkspace("egress+published-ports"));

    it("publishes each port, records where it listens, and removes them on stop", async () => {
      const record = await start({
        published_ports: [{ guest_port: 8000 }, { guest_port: 9000, host_port: 18080 }],
      });
      expect(record.published_ports).toEqual([
        { guest_port: 8000, host_port: 40000, host_address: "127.0.0.1" },
        { guest_port: 9000, host_port: 18080, host_address: "127.0.0.1" },
      ]);
      expect([...agent.forwards]).toEqual([
        [40000, 8000],
        [18080, 9000],
      ]);
      await services.stop({ workspace_id: ID, service_name: "web" });
      expect(agent.forwards.size).toBe(0);
    });

    it("a host port in use fails the start with conflict: nothing published, service stopped", async () => {
      agent.takenPorts.add(18081);
      const error = (await start({
        published_ports: [{ guest_port: 8000 }, { guest_port: 9000, host_port: 18081 }],
      }).catch((e: unknown) => e)) as PyroError;
      expect(error.code).toBe("conflict");
      expect(agent.forwards.size).toBe(0);
      expect(agent.table.get("web")?.state).toBe("exited");
    });

    it("removes the forwards of a service that ended by itself when next read", async () => {
      await start({ published_ports: [{ guest_port: 8000 }] });
      agent.exit("web", 0);
      const record = await services.status({ workspace_id: ID, service_name: "web" });
      expect(record.state).toBe("exited");
      expect(agent.forwards.size).toBe(0);
    });
  });

  it("refuses a workspace that is not started, with the way out", async () => {
    state = "stopped";
    await expect(start()).rejects.toMatchObject({ code: "conflict" });
    expect(agent.calls).toEqual([]);
  });
});

describe("reading services back", () => {
  it("a service that exited by itself is recorded with its exit code and end time", async () => {
    await start();
    agent.exit("web", 3);
    const { services: list } = await services.list({ workspace_id: ID });
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ state: "exited", exit_code: 3, stop_reason: null });
    expect(list[0]!.ended_at).not.toBeNull();
    expect(await counts()).toEqual([1, 0]);
  });

  it("after the workspace stopped behind pyro's back (idle TTL), running services read as stopped", async () => {
    await start();
    state = "stopped";
    const record = await services.status({ workspace_id: ID, service_name: "web" });
    expect(record).toMatchObject({ state: "stopped" });
    expect(record.stop_reason).toMatch(/workspace is stopped/);
    expect(agent.calls).toEqual(["start"]);
  });

  it("a start whose waiter is gone (CLI killed mid-readiness) does not stay starting: it is stopped", async () => {
    // The first check never answers: on disk, this is what a CLI killed while waiting leaves.
    agent.probe = () => {
      agent.calls.push("probe");
      return new Promise<ProbeResult>(() => {});
    };
    void start({ readiness: { type: "file", path: "ready" }, ready_timeout_seconds: 60 });
    await vi.waitFor(() => expect(agent.calls).toContain("probe"));
    // Its waiter is alive and within its wait: nobody else may end the start.
    expect(await services.status({ workspace_id: ID, service_name: "web" })).toMatchObject({
      state: "starting",
    });
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(Date.now() + 3 * 3600_000);
      const record = await services.status({ workspace_id: ID, service_name: "web" });
      expect(record).toMatchObject({ state: "stopped", signal: "TERM" });
      expect(record.stop_reason).toMatch(/abandoned/);
      expect(agent.table.get("web")?.state).toBe("exited");
      expect(await counts()).toEqual([1, 0]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a start whose waiting process died is stopped at once, before its deadline", async () => {
    agent.probe = () => {
      agent.calls.push("probe");
      return new Promise<ProbeResult>(() => {});
    };
    void start({ readiness: { type: "file", path: "ready" }, ready_timeout_seconds: 60 });
    await vi.waitFor(() => expect(agent.calls).toContain("probe"));
    const waiter = join(home, "workspaces", ID, "services", "web.starting");
    const dead = spawnSync("true").pid;
    writeFileSync(
      waiter,
      JSON.stringify({ pid: dead, deadline_ms: Date.now() + 3600_000, service_pid: 100 }),
    );
    const record = await services.status({ workspace_id: ID, service_name: "web" });
    expect(record).toMatchObject({ state: "stopped" });
    expect(record.stop_reason).toMatch(/abandoned/);
  });

  it("logs of a service the guest no longer has say why they are gone and what to do", async () => {
    await start();
    agent.table.delete("web"); // its VM restarted, or 32 newer services took its place
    const error = (await services
      .logs({ workspace_id: ID, service_name: "web" })
      .catch((e: unknown) => e)) as PyroError;
    expect(error.code).toBe("not_found");
    expect(error.message).toMatch(/web.*no longer has it.*start it again/);
  });

  it("unknown names are not_found and name the services that exist", async () => {
    await start();
    const error = (await services
      .status({ workspace_id: ID, service_name: "db" })
      .catch((e: unknown) => e)) as PyroError;
    expect(error.code).toBe("not_found");
    expect(error.message).toContain("its services: web");
    await expect(services.stop({ workspace_id: ID, service_name: "db" })).rejects.toMatchObject({
      code: "not_found",
    });
    await expect(services.logs({ workspace_id: ID, service_name: "db" })).rejects.toMatchObject({
      code: "not_found",
    });
  });

  it("logs come from the guest with the service's state; a stopped workspace has none", async () => {
    await start();
    const logs = await services.logs({ workspace_id: ID, service_name: "web" });
    expect(logs).toMatchObject({ state: "running", stdout: "listening\n", stderr: "warning: x\n" });
    state = "stopped";
    await expect(services.logs({ workspace_id: ID, service_name: "web" })).rejects.toMatchObject({
      code: "conflict",
    });
  });
});

describe("stopping services", () => {
  it("stop records the end and the reason; stopping again answers with the record", async () => {
    await start();
    const stopped = await services.stop({ workspace_id: ID, service_name: "web" });
    expect(stopped).toMatchObject({
      state: "stopped",
      stop_reason: "stop requested",
      signal: "TERM",
    });
    const again = await services.stop({ workspace_id: ID, service_name: "web" });
    expect(again).toEqual(stopped);
    expect(agent.calls.filter((c) => c === "stop")).toHaveLength(1);
    expect(await counts()).toEqual([1, 0]);
  });

  it("stopAll stops every running service (also ones without a host record) and records why", async () => {
    await start();
    await services.start({ workspace_id: ID, service_name: "db", command: ["db"] });
    await agent.start({ name: "stray", argv: ["x"], cwd: "/workspace" });
    const stopped = await services.stopAll(ID, "workspace stop", agent);
    expect(stopped.sort()).toEqual(["db", "stray", "web"]);
    expect([...agent.table.values()].every((s) => s.state === "exited")).toBe(true);
    const { services: list } = await services.list({ workspace_id: ID });
    expect(list.map((s) => [s.service_name, s.state, s.stop_reason])).toEqual([
      ["db", "stopped", "workspace stop"],
      ["web", "stopped", "workspace stop"],
    ]);
    expect(await counts()).toEqual([2, 0]);
  });

  it("stopAll keeps the exit status of a service that had ended by itself", async () => {
    await start();
    agent.exit("web", 4);
    expect(await services.stopAll(ID, "workspace stop", agent)).toEqual([]);
    const record = await services.status({ workspace_id: ID, service_name: "web" });
    expect(record).toMatchObject({ state: "exited", exit_code: 4, stop_reason: null });
  });

  it("stopAll with an unreachable guest still records the services as ended, and does not throw", async () => {
    await start();
    agent.unreachable = true;
    expect(await services.stopAll(ID, "workspace reset", agent)).toEqual(["web"]);
    agent.unreachable = false;
    await start({ service_name: "db" });
    expect(await services.stopAll(ID, "workspace delete", undefined)).toEqual(["db"]);
    agent.unreachable = false;
    state = "stopped";
    const record = await services.status({ workspace_id: ID, service_name: "web" });
    expect(record).toMatchObject({ state: "stopped", stop_reason: "workspace reset" });
    const db = await services.status({ workspace_id: ID, service_name: "db" });
    expect(db).toMatchObject({ state: "stopped", stop_reason: "workspace delete" });
    expect(await counts()).toEqual([2, 0]);
  });
});

describe("reconcileRecord", () => {
  const base: ServiceRecordValue = {
    workspace_id: ID,
    service_name: "web",
    state: "running",
    command: ["srv"],
    cwd: "/workspace",
    started_at: "2026-11-30T00:00:00.000Z",
    ready_at: null,
    ended_at: null,
    exit_code: null,
    signal: null,
    pid: 7,
    readiness: null,
    stop_reason: null,
    published_ports: [],
  };
  const guest = (over: Partial<AgentService>): AgentService => ({
    name: "web",
    pid: 7,
    state: "running",
    exit_code: null,
    signal: null,
    started_at_ms: 0,
    ended_at_ms: null,
    ...over,
  });

  it("keeps a running record the guest still runs, and ended records as they are", () => {
    expect(reconcileRecord(base, guest({}), "x")).toBe(base);
    const ended = { ...base, state: "exited" as const };
    expect(reconcileRecord(ended, undefined, "x")).toBe(ended);
  });

  it("a same-named process with another pid is not this service: it ended with the VM", () => {
    expect(reconcileRecord(base, guest({ pid: 8 }), "vm restarted")).toMatchObject({
      state: "stopped",
      stop_reason: "vm restarted",
    });
  });

  it("takes the guest's exit status and end time", () => {
    expect(
      reconcileRecord(base, guest({ state: "exited", signal: "SEGV", ended_at_ms: 1000 }), "x"),
    ).toMatchObject({
      state: "exited",
      exit_code: null,
      signal: "SEGV",
      ended_at: "1970-01-01T00:00:01.000Z",
    });
  });
});

describe("CLI flag parsing", () => {
  it("turns one --ready-* flag into the readiness union and refuses two", () => {
    expect(readinessFlag({ readyHttp: "http://localhost:8000/" })).toEqual({
      type: "http",
      url: "http://localhost:8000/",
    });
    expect(readinessFlag({})).toBeUndefined();
    expect(() => readinessFlag({ readyFile: "a", readyTcp: "b:1" })).toThrow(
      /at most one readiness flag, not --ready-file and --ready-tcp/,
    );
  });

  it("reads --publish [HOST_PORT:]GUEST_PORT", () => {
    expect(parsePublish("8000")).toEqual({ guest_port: 8000 });
    expect(parsePublish("18000:8000")).toEqual({ guest_port: 8000, host_port: 18000 });
    expect(() => parsePublish("a:b")).toThrow(/HOST_PORT/);
  });
});

describe("a guest's service replies are bounded before the host uses them", () => {
  const entry = {
    name: "web",
    pid: 7,
    state: "exited",
    exit_code: 0,
    signal: null,
    started_at_ms: 1_700_000_000_000,
    ended_at_ms: 1_700_000_000_001,
  };

  it("refuses times a Date cannot hold (they would throw a RangeError after the start)", () => {
    const list = (e: object) =>
      AGENT_OPS.service_list.result.safeParse({ type: "result", services: [e] }).success;
    expect(list(entry)).toBe(true);
    expect(list({ ...entry, started_at_ms: 9e15 })).toBe(false);
    expect(list({ ...entry, ended_at_ms: 8.64e15 + 1 })).toBe(false);
    const started = AGENT_OPS.service_start.result.safeParse({
      type: "result",
      name: "web",
      pid: 7,
      started_at_ms: 9e15,
    });
    expect(started.success).toBe(false);
  });
});
