import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, describe, expect, it } from "vitest";
import { CLI_ENTRY } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";

const home = isolatedHome();
let client: Client;

afterAll(async () => {
  await client?.close();
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

async function call(name: string, args: Record<string, unknown>) {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  return result;
}

async function ok(name: string, args: Record<string, unknown>) {
  const result = await call(name, args);
  const text = result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
  expect(result.isError, `${name}: ${text}`).toBeFalsy();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- payloads are checked by matchers
  return result.structuredContent as Record<string, any>;
}

describe("workspace-core profile through a real MCP client over stdio", () => {
  it("seeds, edits, runs, diffs, resets and deletes a workspace", async () => {
    const seed = mkdtempSync(join(tmpdir(), "pyro-mcp-seed-"));
    mkdirSync(join(seed, "src"));
    writeFileSync(join(seed, "src", "main.sh"), "echo one\n");
    const transport = new StdioClientTransport({
      command: process.execPath,
      // The seed is outside the server's directory: allow it, as a user would.
      args: [CLI_ENTRY, "mcp", "serve", "--allow-host-path", seed],
      env: { PYRO_HOME: home, PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
    });
    client = new Client({ name: "pyro-workspace-test", version: "0" });
    await client.connect(transport);

    const tools = (await client.listTools()).tools;
    const create = tools.find((t) => t.name === "workspace_create")!;
    expect(Object.keys(create.inputSchema.properties ?? {})).not.toContain("secrets");
    expect(Object.keys(create.inputSchema.properties ?? {})).not.toContain("network_policy");
    expect(Object.keys(create.inputSchema.properties ?? {})).not.toContain("allowed_domains");

    const ws = await ok("workspace_create", {
      environment: "debian:12-base",
      seed_path: seed,
      mem_mib: 512,
    });
    const id = ws.workspace_id as string;
    expect(ws.state).toBe("started");
    const files = await ok("workspace_file_list", { workspace_id: id, recursive: true });
    expect(files.entries.map((e: { path: string }) => e.path)).toEqual(["src", "src/main.sh"]);
    await ok("workspace_patch_apply", {
      workspace_id: id,
      patch: "--- a/src/main.sh\n+++ b/src/main.sh\n@@ -1 +1,2 @@\n echo one\n+echo two\n",
    });
    await ok("workspace_file_write", { workspace_id: id, path: "notes.md", text: "# notes\n" });
    const run = await ok("workspace_exec", { workspace_id: id, command: ["sh", "src/main.sh"] });
    expect(run).toMatchObject({ exit_code: 0, stdout: "one\ntwo\n", sequence: 1 });
    expect((await ok("workspace_file_read", { workspace_id: id, path: "notes.md" })).content).toBe(
      "# notes\n",
    );
    const diff = await ok("workspace_diff", { workspace_id: id });
    expect(diff.summary).toMatchObject({ added: 1, modified: 1 });
    const bad = await call("workspace_file_read", { workspace_id: id, path: "../../etc/shadow" });
    expect(bad.isError).toBe(true);
    expect(JSON.stringify(bad.content)).toContain("invalid_argument");
    const reset = await ok("workspace_reset", { workspace_id: id });
    expect(reset.reset_count).toBe(1);
    expect((await ok("workspace_diff", { workspace_id: id })).changed).toBe(false);
    await ok("workspace_delete", { workspace_id: id });
    const gone = await call("workspace_status", { workspace_id: id });
    expect(gone.isError).toBe(true);
    expect(JSON.stringify(gone.content)).toContain("not_found");
  });
});
