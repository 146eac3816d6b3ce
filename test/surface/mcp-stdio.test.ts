import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, describe, expect, it } from "vitest";
import { MCP_PROFILES } from "../../src/contract/operations.js";
import {
  VM_RUN_TOOLS,
  WORKSPACE_CORE_TOOLS,
  workspaceFullTools,
} from "../helpers/contract-names.js";
import { expectedAcceleration } from "../helpers/accel.js";
import { CLI_ENTRY, runCli } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning, vmDirs } from "../helpers/guest.js";
import { INITIALIZE_REQUEST } from "../helpers/mcp-http.js";

const home = isolatedHome();

/**
 * The server's environment is what an MCP host gives it: the SDK's short list of safe
 * variables (HOME, PATH...) plus what the host config sets, here pyro's own variables.
 */
const serverEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    (entry): entry is [string, string] => entry[0].startsWith("PYRO_") && entry[1] !== undefined,
  ),
);

interface Session {
  client: Client;
  transport: StdioClientTransport;
  /** Anything the client could not parse as JSON-RPC (a stray line on stdout). */
  protocolErrors: Error[];
  stderr: () => string;
}

const sessions: Session[] = [];
afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.client.close().catch(() => {})));
});

/** A real MCP client spawning `pyro mcp serve` over stdio, as an MCP host does. */
async function serve(args: string[] = []): Promise<Session> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI_ENTRY, "mcp", "serve", ...args],
    env: serverEnv,
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const client = new Client({ name: "pyro-surface-test", version: "0" });
  const protocolErrors: Error[] = [];
  client.onerror = (error) => protocolErrors.push(error);
  await client.connect(transport);
  const session = { client, transport, protocolErrors, stderr: () => stderr };
  sessions.push(session);
  return session;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * `pyro mcp serve` spoken to by hand: no SDK client, so nothing but the test ever signals
 * it. The SDK client's close() sends SIGTERM 2 s after closing stdin, which would hide a
 * server that never notices stdin closing; here an exit with status 0 can only be its own.
 */
function rawServer(args: string[], lines: object[]) {
  const child = spawn(process.execPath, [CLI_ENTRY, "mcp", "serve", ...args], {
    env: { ...process.env, PYRO_HOME: home },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stdin.write(lines.map((r) => `${JSON.stringify(r)}\n`).join(""));
  return { child, stdout: () => stdout };
}

const initialize = [INITIALIZE_REQUEST, { jsonrpc: "2.0", method: "notifications/initialized" }];

/**
 * How the process ended, or "still running" after a bound generous enough for a loaded
 * 2-core machine: the feature is that it exits at all without being signalled.
 */
async function exitOf(child: ReturnType<typeof spawn>, boundMs = 30_000) {
  const timer = setTimeout(() => child.kill("SIGKILL"), boundMs);
  const [code, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return signal === "SIGKILL" ? "still running" : { code, signal };
}

const text = (result: CallToolResult) =>
  result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");

/** The VM's supervisor says it is ready: from then on it belongs to the server's connection. */
function runningVm(): boolean {
  const [dir] = vmDirs(home);
  if (!dir) return false;
  try {
    return JSON.parse(readFileSync(join(home, "vms", dir, "shim.json"), "utf8")).state === "ready";
  } catch {
    return false;
  }
}

describe("pyro mcp serve over stdio", () => {
  it("lists exactly each profile's tools", async () => {
    // Literal lists from CONTRACT.md, not the server's own operationsForProfile().
    const expected = {
      "vm-run": VM_RUN_TOOLS,
      "workspace-core": WORKSPACE_CORE_TOOLS,
      "workspace-full": workspaceFullTools(),
    };
    for (const profile of MCP_PROFILES) {
      const { client } = await serve(["--profile", profile]);
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names.sort(), profile).toEqual([...expected[profile]].sort());
    }
    const { client } = await serve();
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names.sort()).toEqual([...WORKSPACE_CORE_TOOLS].sort());
    expect(client.getServerVersion()?.name).toBe("pyro");
  });

  it("refuses an unknown profile with exit 2, listing the valid ones", async () => {
    const r = await runCli(["mcp", "serve", "--profile", "everything"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("vm-run, workspace-core, workspace-full");
    expect(r.stdout).toBe("");
  });

  it("runs git --version in a real VM with vm_run, reporting progress", async () => {
    const { client, protocolErrors, stderr } = await serve(["--profile", "vm-run"]);
    await client.listTools(); // lets the client check structuredContent against the schema
    const progress: string[] = [];
    const result = (await client.callTool(
      { name: "vm_run", arguments: { environment: "debian:12", command: ["git", "--version"] } },
      undefined,
      { onprogress: (p) => progress.push(p.message ?? "") },
    )) as CallToolResult;
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({
      environment: "debian:12",
      command: ["git", "--version"],
      exit_code: 0,
      stdout: expect.stringMatching(/^git version 2\.39\.\d+\n$/),
      stderr: "",
      timed_out: false,
      execution_mode: "guest",
      acceleration: expectedAcceleration(),
    });
    expect(text(result)).toMatch(/^exit_code: 0, \d+ ms\nstdout:\ngit version 2\.39/);
    expect(progress).toContainEqual(expect.stringMatching(/^\[run\] phase=boot vm_id=vm_/));
    expect(vmDirs(home)).toEqual([]);
    expect(protocolErrors).toEqual([]);
    expect(stderr()).toContain("[mcp] phase=serve profile=vm-run");
  });

  it("answers bad arguments with an error result naming the field, and keeps serving", async () => {
    const { client } = await serve(["--profile", "vm-run"]);
    const bad = (await client.callTool({
      name: "vm_run",
      arguments: { environment: "debian:12", command: [], mem_mib: 1 },
    })) as CallToolResult;
    expect(bad.isError).toBe(true);
    expect(text(bad)).toMatch(/at command/);
    expect(text(bad)).toMatch(/at mem_mib/);
    const unknown = (await client.callTool({
      name: "vm_run",
      arguments: { environment: "nope:1", command: ["true"] },
    })) as CallToolResult;
    expect(unknown.isError).toBe(true);
    expect(text(unknown)).toMatch(/^\[not_found\] .*debian:12/);
    expect((await client.listTools()).tools).toHaveLength(1);
  });

  it("writes only JSON-RPC to stdout and exits by itself when stdin closes", async () => {
    const { child, stdout } = rawServer(
      [],
      [
        ...initialize,
        { jsonrpc: "2.0", id: 2, method: "tools/list" },
        {
          jsonrpc: "2.0",
          id: 3,
          method: "tools/call",
          params: { name: "vm_run", arguments: { command: [] } },
        },
      ],
    );
    await eventually(() => stdout().split("\n").length > 3, 10_000);
    child.stdin.end();
    expect(await exitOf(child)).toEqual({ code: 0, signal: null });
    const lines = stdout().split("\n").filter(Boolean);
    expect(lines.map((l) => JSON.parse(l).id)).toEqual([1, 2, 3]);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ jsonrpc: "2.0" });
  });

  it("leaves no VM behind when the client disconnects mid-call", async () => {
    const { child } = rawServer(
      ["--profile", "vm-run"],
      [
        ...initialize,
        {
          jsonrpc: "2.0",
          id: 2,
          method: "tools/call",
          params: {
            name: "vm_run",
            arguments: { environment: "debian:12-base", command: ["sleep", "60"] },
          },
        },
      ],
    );
    expect(await eventually(runningVm, 60_000)).toBe(true);
    child.stdin.end(); // the client goes away; nobody signals the server
    // Status 0 is the server's own exit on stdin closing (its SIGTERM handler exits 143).
    expect(await exitOf(child)).toEqual({ code: 0, signal: null });
    expect(await eventually(() => vmDirs(home).length === 0, 20_000)).toBe(true);
    expect(await eventually(() => processesMentioning(home).length === 0, 20_000)).toBe(true);
  });

  it("leaves no VM behind when the server is sent SIGTERM mid-call", async () => {
    const { client, transport } = await serve(["--profile", "vm-run"]);
    const call = client
      .callTool({
        name: "vm_run",
        arguments: { environment: "debian:12-base", command: ["sleep", "60"] },
      })
      .catch((error: Error) => error);
    expect(await eventually(runningVm, 60_000)).toBe(true);
    const pid = transport.pid;
    expect(pid).toBeTypeOf("number");
    process.kill(pid as number, "SIGTERM");
    expect(await call).toBeInstanceOf(Error);
    expect(await eventually(() => !alive(pid as number), 20_000)).toBe(true);
    expect(await eventually(() => processesMentioning(home).length === 0, 20_000)).toBe(true);
    expect(await eventually(() => vmDirs(home).length === 0, 20_000)).toBe(true);
  });
});
