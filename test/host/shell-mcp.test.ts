import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, describe, expect, it } from "vitest";
import { eventually, processesMentioning } from "../helpers/guest.js";
import { HOST_ENVIRONMENT, hostTierHome } from "../helpers/host.js";
import { inMemoryClients } from "../helpers/mcp-memory.js";

// The shell tools as a model calls them: a real MCP client against the real server, over
// the host-process driver (the guest tier proves the same on a VM, through the SDK).
const home = hostTierHome();
const { connect, closeAll } = inMemoryClients("pyro-shell-mcp-test");

afterAll(async () => {
  await closeAll();
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

async function ok(client: Client, name: string, args: Record<string, unknown>) {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const text = result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
  expect(result.isError, `${name}: ${text}`).toBeFalsy();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- payloads are checked by matchers
  return result.structuredContent as Record<string, any>;
}

describe("shell tools over MCP", () => {
  it("are in workspace-full only", async () => {
    const names = async (client: Client) => (await client.listTools()).tools.map((t) => t.name);
    const shellTools = ["shell_open", "shell_read", "shell_write", "shell_signal", "shell_close"];
    expect(await names(await connect("workspace-full"))).toEqual(
      expect.arrayContaining(shellTools),
    );
    const core = await names(await connect("workspace-core"));
    expect(core.filter((name) => name.startsWith("shell_"))).toEqual([]);
  });

  it("open, write, read until the output shows, close", async () => {
    const client = await connect("workspace-full");
    const ws = await ok(client, "workspace_create", { environment: HOST_ENVIRONMENT });
    const workspace_id = ws.workspace_id as string;
    const shell = await ok(client, "shell_open", { workspace_id, cols: 80, rows: 24 });
    expect(shell).toMatchObject({ state: "running", cols: 80, rows: 24, cwd: "/workspace" });
    const shell_id = shell.shell_id as string;
    await ok(client, "shell_write", { workspace_id, shell_id, input: "echo mcp-$((3+4))" });
    let output = "";
    let cursor = 0;
    for (let i = 0; i < 50 && !/mcp-7\n/.test(output); i++) {
      const read = await ok(client, "shell_read", {
        workspace_id,
        shell_id,
        cursor,
        plain: true,
        wait_for_idle_ms: 100,
      });
      output += read.output as string;
      cursor = read.next_cursor as number;
    }
    expect(output).toMatch(/mcp-7\n/);
    expect(await ok(client, "shell_close", { workspace_id, shell_id })).toMatchObject({
      closed: true,
    });
    const gone = (await client.callTool({
      name: "shell_read",
      arguments: { workspace_id, shell_id },
    })) as CallToolResult;
    expect(gone.isError).toBe(true);
    expect(JSON.stringify(gone.content)).toContain("not_found");
    await ok(client, "workspace_delete", { workspace_id });
  });
});
