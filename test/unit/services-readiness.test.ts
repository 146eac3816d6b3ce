import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createServer as createTcpServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  readinessArgv,
  splitAddress,
  waitUntilReady,
} from "../../src/manager/service-readiness.js";
import type { ProbeResult } from "../../src/manager/service-agent.js";

/**
 * The readiness commands are run for real here, with the host's bash and test against
 * local servers: the same programs a Debian guest runs them with. Asynchronously, since
 * the HTTP server answers from this same event loop.
 */
function run(argv: string[], cwd = tmpdir()): Promise<{ status: number | null; stderr: string }> {
  const [cmd, ...args] = argv;
  const child = spawn(cmd!, args, { cwd, timeout: 5000, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stderr })));
}

let http: Server;
let httpPort = 0;
let closedPort = 0;

beforeAll(async () => {
  http = createServer((req, res) => {
    if (req.url === "/ok") return res.writeHead(200).end("ok");
    if (req.url === "/moved") return res.writeHead(302, { location: "/ok" }).end();
    // A 200 whose body never ends, and one that never stops coming.
    if (req.url === "/hang") return void res.writeHead(200).write("partial\n");
    if (req.url === "/flood") {
      res.writeHead(200);
      const line = "y".repeat(99) + "\n";
      const more = () => {
        while (!res.destroyed && res.write(line.repeat(100)));
        if (!res.destroyed) res.once("drain", more);
      };
      return more();
    }
    if (req.headers.host !== `127.0.0.1:${httpPort}`) return res.writeHead(400).end();
    res.writeHead(503).end("busy");
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  httpPort = (http.address() as AddressInfo).port;
  // A port that was free a moment ago: nothing listens there now.
  const probe = createTcpServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(() => new Promise<void>((resolve) => http.close(() => resolve())));

describe("readiness commands (run with the host's bash)", () => {
  it("file: ready once the path exists, relative paths from the service's cwd", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pyro-services-ready-"));
    const argv = readinessArgv({ type: "file", path: "ready.flag" });
    expect((await run(argv, dir)).status).not.toBe(0);
    writeFileSync(join(dir, "ready.flag"), "");
    expect((await run(argv, dir)).status).toBe(0);
    rmSync(dir, { recursive: true, force: true });
  });

  it("tcp: ready when something listens, not when nothing does", async () => {
    expect(
      (await run(readinessArgv({ type: "tcp", address: `127.0.0.1:${httpPort}` }))).status,
    ).toBe(0);
    expect(
      (await run(readinessArgv({ type: "tcp", address: `127.0.0.1:${closedPort}` }))).status,
    ).not.toBe(0);
  });

  it("http: 2xx and 3xx are ready; other statuses are not and the status line is quoted", async () => {
    const url = (path: string) => `http://127.0.0.1:${httpPort}${path}`;
    expect((await run(readinessArgv({ type: "http", url: url("/ok") }))).status).toBe(0);
    expect((await run(readinessArgv({ type: "http", url: url("/moved") }))).status).toBe(0);
    const busy = await run(readinessArgv({ type: "http", url: url("/busy?x=1") }));
    expect(busy.status).not.toBe(0);
    // The Host header carried the port: the server answered 503, not its 400.
    expect(busy.stderr).toContain("HTTP status line: HTTP/1.1 503");
    expect(busy.stderr).not.toContain("\r");
    expect(
      (await run(readinessArgv({ type: "http", url: `http://127.0.0.1:${closedPort}/` }))).status,
    ).not.toBe(0);
  });

  it("http: a 200 whose body hangs or never ends is still ready, within the check's bound", async () => {
    const url = (path: string) => `http://127.0.0.1:${httpPort}${path}`;
    expect((await run(readinessArgv({ type: "http", url: url("/hang") }))).status).toBe(0);
    expect((await run(readinessArgv({ type: "http", url: url("/flood") }))).status).toBe(0);
  });

  it("command: its exit status decides", async () => {
    expect((await run(readinessArgv({ type: "command", command: "true && exit 0" }))).status).toBe(
      0,
    );
    expect((await run(readinessArgv({ type: "command", command: "exit 3" }))).status).toBe(3);
  });

  it("splits HOST:PORT, including bracketed IPv6 literals", () => {
    expect(splitAddress("localhost:8000")).toEqual({ host: "localhost", port: "8000" });
    expect(splitAddress("[::1]:443")).toEqual({ host: "::1", port: "443" });
  });
});

/** A clock that advances only when the loop waits or a check takes time. */
function fakeClock() {
  let now = 0;
  return {
    now: () => now,
    wait: async (ms: number) => {
      now += ms;
    },
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const fail = (output: string): ProbeResult => ({ exit_code: 1, output });

describe("waitUntilReady", () => {
  it("returns ready at the first passing check", async () => {
    const clock = fakeClock();
    const answers = [fail("refused"), fail("refused"), { exit_code: 0, output: "" }];
    const outcome = await waitUntilReady({
      probe: async () => answers.shift()!,
      stillRunning: async () => true,
      timeoutMs: 10_000,
      intervalMs: 500,
      ...clock,
    });
    expect(outcome).toEqual({ ready: true, checks: 3 });
    expect(clock.now()).toBe(1000);
  });

  it("gives up at the deadline with the last check's output", async () => {
    const clock = fakeClock();
    let n = 0;
    const outcome = await waitUntilReady({
      probe: async () => fail(`attempt ${++n}`),
      stillRunning: async () => true,
      timeoutMs: 2000,
      intervalMs: 500,
      ...clock,
    });
    expect(outcome).toEqual({ ready: false, reason: "timeout", lastError: "attempt 5", checks: 5 });
    expect(clock.now()).toBeLessThanOrEqual(2000);
  });

  it("stops at once when the service has died", async () => {
    const clock = fakeClock();
    const outcome = await waitUntilReady({
      probe: async () => ({ exit_code: null, output: "" }),
      stillRunning: async () => false,
      timeoutMs: 60_000,
      intervalMs: 500,
      ...clock,
    });
    expect(outcome).toMatchObject({ ready: false, reason: "exited", checks: 1 });
    expect(outcome.ready === false && outcome.lastError).toBe("check exited with a signal");
  });

  it("bounds each check by the time left (at least 500 ms, at most 5 s)", async () => {
    const clock = fakeClock();
    const budgets: number[] = [];
    await waitUntilReady({
      probe: async (ms) => {
        budgets.push(ms);
        clock.advance(ms);
        return fail("hung");
      },
      stillRunning: async () => true,
      timeoutMs: 7000,
      intervalMs: 100,
      ...clock,
    });
    expect(budgets).toEqual([5000, 1900]);
  });
});
