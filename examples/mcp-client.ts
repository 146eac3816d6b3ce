/**
 * A generic MCP client over stdio: spawns `pyro mcp serve` the way any MCP host does,
 * lists the tools and calls `vm_run`. Useful to check a setup before wiring a host.
 *
 *   npx tsx examples/mcp-client.ts            (needs `pyro` on PATH: scripts/setup.sh)
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";

const transport = new StdioClientTransport({
  command: "pyro",
  args: ["mcp", "serve", "--profile", "vm-run"],
});
const client = new Client({ name: "pyro-example", version: "1.0.0" });
await client.connect(transport);
try {
  const { tools } = await client.listTools();
  console.log(`tools: ${tools.map((t) => t.name).join(", ")}`);
  const result = (await client.callTool(
    { name: "vm_run", arguments: { environment: "debian:12", command: ["git", "--version"] } },
    undefined,
    // Progress (kernel and environment builds on a first run, boot, then the command's
    // newest output lines while it runs) arrives as messages.
    { onprogress: ({ message }) => console.error(message), resetTimeoutOnProgress: true },
  )) as CallToolResult;
  console.log(JSON.stringify(result.structuredContent, null, 2));
} finally {
  await client.close();
}
