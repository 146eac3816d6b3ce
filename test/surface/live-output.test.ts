import { spawn } from "node:child_process";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI_ENTRY, runCli } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning, vmDirs } from "../helpers/guest.js";

/**
 * Live output through real VMs, as a user and a model see it: the built CLI as a
 * subprocess and a real MCP client over stdio. A command prints a line, then waits for
 * something only the test does once it has seen that line (create a file, cancel), so
 * output held back until the end could never pass: the order is the proof, not timings.
 * test/host/live-output.test.ts covers the SDK callbacks and more cases in seconds.
 */
const home = isolatedHome();
const ENVIRONMENT = "debian:12-base";
let client: Client;
let workspace_id = "";

/** Prints `first`, waits for `flag` (under /workspace), prints `second`. */
const waitsFor = (flag: string) => [
  "sh",
  "-c",
  `echo first; while [ ! -e ${flag} ]; do sleep 0.1; done; echo second`,
];

async function ok(name: string, args: Record<string, unknown>) {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const text = result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
  expect(result.isError, `${name}: ${text}`).toBeFalsy();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- payloads are checked by matchers
  return result.structuredContent as Record<string, any>;
}

const release = (flag: string) => ok("workspace_exec", { workspace_id, command: ["touch", flag] });

/** The CLI as a subprocess; `onStdout` sees its stdout as it comes. */
function cli(args: string[], onStdout: (stdout: string, kill: () => void) => void) {
  const child = spawn(process.execPath, [CLI_ENTRY, ...args], {
    env: process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    onStdout(stdout, () => child.kill("SIGINT"));
  });
  return new Promise<{ code: number | null; signal: string | null; stdout: string }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout })),
  );
}

beforeAll(async () => {
  client = new Client({ name: "pyro-live-output-test", version: "0" });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [CLI_ENTRY, "mcp", "serve"],
      env: { PYRO_HOME: home, PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
    }),
  );
  workspace_id = (await ok("workspace_create", { environment: ENVIRONMENT, mem_mib: 512 }))
    .workspace_id;
});

afterAll(async () => {
  if (workspace_id) await runCli(["workspace", "delete", workspace_id]);
  await client?.close();
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

describe("live output through real VMs", () => {
  it("pyro workspace exec prints the first line while the command still runs", async () => {
    let released: Promise<unknown> | undefined;
    const result = await cli(
      ["workspace", "exec", workspace_id, "--", ...waitsFor("cli.flag")],
      (stdout) => {
        if (!released && stdout === "first\n") released = release("cli.flag");
      },
    );
    await released;
    expect(result).toEqual({ code: 0, signal: null, stdout: "first\nsecond\n" });
  });

  it("pyro run prints the first line before the command ends; Ctrl-C then removes the VM", async () => {
    const result = await cli(
      ["run", ENVIRONMENT, "--mem-mib", "512", "--", "sh", "-c", "echo first; exec sleep 100"],
      (stdout, interrupt) => {
        if (stdout === "first\n") interrupt();
      },
    );
    // Interrupted by the test, which only does so on seeing the line: not ended by itself.
    expect(result.stdout).toBe("first\n");
    expect(result.code === 130 || result.signal === "SIGINT").toBe(true);
    expect(await eventually(() => vmDirs(home).length === 0)).toBe(true);
  });

  it("MCP workspace_exec sends the first line as progress while the command still runs", async () => {
    const messages: string[] = [];
    let released: Promise<unknown> | undefined;
    const result = (await client.callTool(
      {
        name: "workspace_exec",
        arguments: { workspace_id, command: waitsFor("mcp.flag"), timeout_seconds: 60 },
      },
      undefined,
      {
        onprogress: ({ message }) => {
          messages.push(message ?? "");
          if (!released && message === "first") released = release("mcp.flag");
        },
      },
    )) as CallToolResult;
    await released;
    expect(result.structuredContent).toMatchObject({ exit_code: 0, stdout: "first\nsecond\n" });
    expect(messages[0]).toBe("first");
  });

  it("MCP vm_run: phases, then the first line as progress; cancelling then removes the VM", async () => {
    const controller = new AbortController();
    const messages: string[] = [];
    const call = client.callTool(
      {
        name: "vm_run",
        arguments: {
          environment: ENVIRONMENT,
          mem_mib: 512,
          command: ["sh", "-c", "echo first >&2; exec sleep 100"],
          timeout_seconds: 90,
        },
      },
      undefined,
      {
        signal: controller.signal,
        timeout: 120_000,
        onprogress: ({ message }) => {
          messages.push(message ?? "");
          if (message === "[stderr] first") controller.abort();
        },
      },
    );
    await expect(call).rejects.toThrow(/abort/i);
    expect(messages.at(-1)).toBe("[stderr] first");
    expect(messages.some((m) => m.startsWith("[run] phase=boot"))).toBe(true);
    expect(await eventually(() => vmDirs(home).length === 0)).toBe(true);
  });
});
