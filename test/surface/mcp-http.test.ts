import { spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectedAcceleration } from "../helpers/accel.js";
import { startBearerProxy } from "../helpers/bearer-proxy.js";
import { eventually, isolatedHome, processesMentioning, vmDirs } from "../helpers/guest.js";
import { callOk, httpClient, startHttpServer, type HttpServer } from "../helpers/mcp-http.js";
import { tempDir } from "../helpers/temp.js";

// `pyro mcp serve --http` end to end: a real SDK client over HTTP running a command in a
// real VM, a session's end releasing its VMs (a created one and an in-flight vm_run), and
// the official MCP conformance suite's server scenarios that apply to a tools-only server.
const home = isolatedHome();
let server: HttpServer;

beforeAll(async () => {
  server = await startHttpServer(["--profile", "workspace-full"]);
});

afterAll(async () => {
  expect(await server.stop()).toBe(128 + 15);
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

describe("pyro mcp serve --http with a real VM", () => {
  it("an SDK client lists the tools and runs a command in a VM", async () => {
    const { client, transport } = await httpClient(server);
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools).toEqual(expect.arrayContaining(["vm_run", "workspace_create", "vm_create"]));
    const run = await callOk(client, "vm_run", {
      environment: "debian:12",
      command: ["sh", "-c", "echo hello-over-http; cat /proc/sys/kernel/ostype"],
    });
    expect(run).toMatchObject({
      exit_code: 0,
      stdout: "hello-over-http\nLinux\n",
      execution_mode: "guest",
      acceleration: expectedAcceleration(),
    });
    expect(vmDirs(home)).toEqual([]);
    await transport.terminateSession();
  });

  it("a session's end deletes its started VM and stops its running vm_run", async () => {
    const { client, transport } = await httpClient(server);
    const vm = await callOk(client, "vm_create", { environment: "debian:12" });
    await callOk(client, "vm_start", { vm_id: vm.vm_id });
    const running = client.callTool({
      name: "vm_run",
      arguments: { environment: "debian:12", command: ["sleep", "120"], timeout_seconds: 150 },
    });
    running.catch(() => {});
    // Two VMs: the started one and the one vm_run booted for its sleep.
    expect(await eventually(() => vmDirs(home).length === 2, 120_000)).toBe(true);
    await transport.terminateSession();
    expect(await eventually(() => vmDirs(home).length === 0, 60_000)).toBe(true);
    expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
  });
});

/**
 * The conformance suite's server scenarios that a tools-only server without the suite's
 * own test tools can pass; docs/integrations.md lists every scenario with its result and
 * why the others do not apply.
 */
const APPLICABLE_SCENARIOS = [
  "server-initialize",
  "ping",
  "tools-list",
  "server-sse-multiple-streams",
  "dns-rebinding-protection",
];

const CONFORMANCE = resolve("node_modules/@modelcontextprotocol/conformance/dist/index.js");

interface Check {
  id: string;
  status: "SUCCESS" | "FAILURE" | "WARNING" | "INFO";
  errorMessage?: string;
}

describe("MCP conformance suite (server scenarios) against pyro mcp serve --http", () => {
  // The suite sends no bearer token: a test-side proxy adds it, and passes Host and
  // Origin through untouched so the DNS-rebinding scenario still tests pyro's check.
  it.each(APPLICABLE_SCENARIOS)("%s passes", async (scenario) => {
    const proxy = await startBearerProxy(server.url, server.token);
    const out = tempDir("pyro-conformance-");
    try {
      const child = spawn(
        process.execPath,
        [CONFORMANCE, "server", "--url", proxy.url, "--scenario", scenario, "-o", out],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let output = "";
      child.stdout.on("data", (c: Buffer) => (output += c.toString()));
      child.stderr.on("data", (c: Buffer) => (output += c.toString()));
      await once(child, "exit");
      const checks = readdirSync(out).flatMap(
        (dir) => JSON.parse(readFileSync(join(out, dir, "checks.json"), "utf8")) as Check[],
      );
      expect(checks.length, output).toBeGreaterThan(0);
      const failed = checks.filter((c) => c.status === "FAILURE");
      expect(failed, output).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});
