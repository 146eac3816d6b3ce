import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
// The server module itself: the SDK entry loads it with require(), which vitest cannot serve.
import { createServer } from "../../src/mcp/server.js";
import { sleep } from "../../src/util/process.js";
import { eventually, processesMentioning } from "../helpers/guest.js";
import { HOST_ENVIRONMENT, hostTierHome, spawnCli } from "../helpers/host.js";

/**
 * Live output through the real shim and agent (host-process VMM), on every surface: the
 * command prints a line, then waits for a file that the test creates only once it has
 * seen that line, then prints again. Output held back until the command ends could never
 * release it (the command would time out instead), so these prove the order of events,
 * not timings. test/surface/live-output.test.ts proves the same through a real VM.
 */
const home = hostTierHome();
const pyro = new Pyro();
let workspace_id = "";
let client: Client;

/** Prints `first`, waits for `flag` (under /workspace), prints `second`. */
const waitsFor = (flag: string) => [
  "sh",
  "-c",
  `echo first; while [ ! -e ${flag} ]; do sleep 0.05; done; echo second`,
];
const release = (flag: string) =>
  pyro.execWorkspace({ workspace_id, command: ["touch", flag] }).then((r) => {
    expect(r.exit_code).toBe(0);
  });

beforeAll(async () => {
  workspace_id = (await pyro.createWorkspace({ environment: HOST_ENVIRONMENT })).workspace_id;
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await createServer({ profile: "workspace-full" }).connect(serverSide);
  client = new Client({ name: "pyro-live-output-test", version: "0" });
  await client.connect(clientSide);
});

afterAll(async () => {
  await client?.close();
  if (workspace_id) await pyro.deleteWorkspace({ workspace_id }).catch(() => {});
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

describe("live output of a running command", () => {
  it("SDK execWorkspace: onStdout sees the first line while the command still runs", async () => {
    const events: string[] = [];
    let releasing: Promise<void> | undefined;
    const result = await pyro.execWorkspace(
      { workspace_id, command: waitsFor("sdk.flag"), timeout_seconds: 20 },
      {
        onStdout: (chunk) => {
          events.push(`stdout ${JSON.stringify(chunk.toString())}`);
          if (!releasing) releasing = release("sdk.flag").then(() => void events.push("released"));
        },
      },
    );
    await releasing;
    expect(result).toMatchObject({ exit_code: 0, timed_out: false, stdout: "first\nsecond\n" });
    expect(events).toEqual(['stdout "first\\n"', "released", 'stdout "second\\n"']);
  });

  it("SDK execVm: onStderr streams too", async () => {
    const vm = await pyro.createVm({ environment: HOST_ENVIRONMENT });
    await pyro.startVm({ vm_id: vm.vm_id });
    const controller = new AbortController();
    const chunks: string[] = [];
    const result = await pyro.execVm(
      {
        vm_id: vm.vm_id,
        command: ["sh", "-c", "echo warming >&2; exec sleep 60"],
        timeout_seconds: 30,
      },
      {
        signal: controller.signal,
        onStderr: (chunk) => {
          chunks.push(chunk.toString());
          controller.abort();
        },
      },
    );
    // Ended by the abort the first line caused (KILL), not by the sleep or the timeout.
    expect(result).toMatchObject({ exit_code: 137, timed_out: false, stderr: "warming\n" });
    expect(chunks).toEqual(["warming\n"]);
  });

  it("SDK: a callback that throws fails the call and kills the command", async () => {
    const call = pyro.execWorkspace(
      { workspace_id, command: ["sh", "-c", "echo first; exec sleep 7777.25"] },
      {
        onStdout: () => {
          throw new Error("the caller's handler broke");
        },
      },
    );
    await expect(call).rejects.toThrow("the caller's handler broke");
    // The failed call closes its connection, and the shim kills an exec whose client went.
    // The guest is a host process here, so its command shows up in the host's /proc.
    expect(await eventually(() => processesMentioning("7777.25").length === 0)).toBe(true);
  });

  it("CLI workspace exec writes the first line to stdout while the command still runs", async () => {
    const child = spawnCli(["workspace", "exec", workspace_id, "--", ...waitsFor("cli.flag")]);
    let stdout = "";
    let released: Promise<void> | undefined;
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!released && stdout.includes("first\n")) released = release("cli.flag");
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    await released;
    expect({ code, stdout }).toEqual({ code: 0, stdout: "first\nsecond\n" });
  });

  it("CLI: a reader that goes away (| head) cancels the command; pyro exits without a trace", async () => {
    const child = spawnCli(["workspace", "exec", workspace_id, "--", "yes", "marker-4242"]);
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout!.once("data", () => child.stdout!.destroy());
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    // Killed (128 + 9) once pyro's write failed: `yes` never ends on its own.
    expect({ code, stderr }).toEqual({ code: 137, stderr: "" });
    expect(await eventually(() => processesMentioning("marker-4242").length === 0)).toBe(true);
  });

  it("CLI: a command that times out exits 124 and says so on stderr", async () => {
    const child = spawnCli([
      "workspace",
      "exec",
      workspace_id,
      "--timeout-seconds",
      "1",
      "--",
      "sh",
      "-c",
      "echo before; exec sleep 30",
    ]);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect({ code, stdout }).toEqual({ code: 124, stdout: "before\n" });
    expect(stderr).toMatch(
      new RegExp(`^\\[exec\\] phase=timeout workspace_id=${workspace_id} sequence=\\d+\n$`),
    );
  });

  it("MCP workspace_exec sends the first line as progress while the command still runs", async () => {
    const messages: string[] = [];
    let released: Promise<void> | undefined;
    const result = (await client.callTool(
      {
        name: "workspace_exec",
        arguments: { workspace_id, command: waitsFor("mcp.flag"), timeout_seconds: 20 },
      },
      undefined,
      {
        onprogress: (progress) => {
          messages.push(progress.message ?? "");
          if (!released && progress.message === "first") released = release("mcp.flag");
        },
      },
    )) as CallToolResult;
    await released;
    expect(result.structuredContent).toMatchObject({ exit_code: 0, stdout: "first\nsecond\n" });
    expect(messages[0]).toBe("first");
    // The last line may beat the result or be dropped by it, never arrive after it.
    expect(messages.slice(1).every((m) => m === "second")).toBe(true);
  });

  it("MCP cancellation after the first progress line kills the command", async () => {
    const script = "echo started; exec sleep 60";
    const controller = new AbortController();
    const call = client.callTool(
      {
        name: "workspace_exec",
        arguments: {
          workspace_id,
          command: ["sh", "-c", script],
          timeout_seconds: 30,
        },
      },
      undefined,
      {
        signal: controller.signal,
        onprogress: (progress) => {
          if (progress.message === "started") controller.abort();
        },
      },
    );
    await expect(call).rejects.toThrow(/abort/i);
    // The journal shows the command killed (128 + 9), not ended by its timeout (124).
    let entry: { exit_code: number; timed_out: boolean } | undefined;
    for (let i = 0; i < 200 && !entry; i++) {
      const logs = await pyro.logsWorkspace({ workspace_id });
      entry = logs.entries.find((e) => e.command.includes(script));
      if (!entry) await sleep(50);
    }
    expect(entry).toMatchObject({ exit_code: 137, timed_out: false });
  });
});
