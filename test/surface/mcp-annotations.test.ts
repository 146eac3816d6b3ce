import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { describe, expect, it } from "vitest";
import { OPERATIONS } from "../../src/contract/operations.js";
import { CLI_ENTRY } from "../helpers/cli.js";
import { isolatedHome } from "../helpers/guest.js";

isolatedHome();

/**
 * What an MCP host sees when it spawns `pyro mcp serve` and lists tools: each tool's
 * annotations (which hosts use to decide what to run without asking) and schemas whose
 * integers carry real bounds. Listing tools boots nothing.
 */
describe("pyro mcp serve tool list, through a real stdio client", () => {
  it("carries every tool's annotations and bounded integer schemas", async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI_ENTRY, "mcp", "serve", "--profile", "workspace-full"],
      env: { PYRO_HOME: process.env.PYRO_HOME! },
      stderr: "pipe",
    });
    const client = new Client({ name: "pyro-annotations-surface", version: "0" });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      expect(tools.length).toBeGreaterThan(30);
      for (const tool of tools) {
        const op = OPERATIONS.find((o) => o.mcpTool === tool.name);
        expect(tool.annotations, tool.name).toEqual(op?.annotations);
        expect(tool.title, tool.name).toBe(op?.annotations.title);
      }
      const annotations = (name: string) => tools.find((t) => t.name === name)?.annotations;
      expect(annotations("workspace_list")).toMatchObject({
        readOnlyHint: true,
        destructiveHint: false,
      });
      expect(annotations("workspace_delete")).toMatchObject({
        readOnlyHint: false,
        destructiveHint: true,
        idempotentHint: true,
      });
      expect(annotations("workspace_create")).toMatchObject({ openWorldHint: true });
      expect(JSON.stringify(tools)).not.toContain(String(Number.MAX_SAFE_INTEGER));
      const read = tools.find((t) => t.name === "workspace_file_read")!;
      expect(read.inputSchema.properties?.max_bytes).toMatchObject({
        type: "integer",
        minimum: expect.any(Number),
        maximum: 16 << 20,
      });
    } finally {
      await client.close();
    }
  });
});
