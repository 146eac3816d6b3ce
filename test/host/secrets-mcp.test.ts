import { randomBytes } from "node:crypto";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, describe, expect, it } from "vitest";
import { eventually, processesMentioning } from "../helpers/guest.js";
import { HOST_ENVIRONMENT, hostTierHome } from "../helpers/host.js";
import { inMemoryClients } from "../helpers/mcp-memory.js";

// Secrets as a model meets them: a real MCP client against the real server (host-process
// driver). Nothing a tool returns, result or error, may carry a value.
const home = hostTierHome();
const { connect, closeAll } = inMemoryClients("pyro-secrets-mcp-test");
const VALUE = `mcp-${randomBytes(12).toString("hex")}`;

afterAll(async () => {
  await closeAll();
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

const call = async (client: Client, name: string, args: Record<string, unknown>) =>
  (await client.callTool({ name, arguments: args })) as CallToolResult;

describe("secrets over MCP", () => {
  it("workspace-core's workspace_create has no secrets, workspace-full's has", async () => {
    const createSchema = async (client: Client) =>
      (await client.listTools()).tools.find((t) => t.name === "workspace_create")!.inputSchema;
    expect(
      Object.keys((await createSchema(await connect("workspace-core"))).properties ?? {}),
    ).not.toContain("secrets");
    expect(
      Object.keys((await createSchema(await connect("workspace-full"))).properties ?? {}),
    ).toContain("secrets");
  });

  it("no tool result or error carries a value", async () => {
    const client = await connect("workspace-full");
    const created = await call(client, "workspace_create", {
      environment: HOST_ENVIRONMENT,
      secrets: [{ name: "API_KEY", value: VALUE }],
    });
    expect(created.isError).toBeFalsy();
    const workspace_id = (created.structuredContent as { workspace_id: string }).workspace_id;
    const results = [created];
    const exec = await call(client, "workspace_exec", {
      workspace_id,
      command: ["sh", "-c", 'echo "key=$K"; echo "$K" | base64 >&2'],
      secret_env: { K: "API_KEY" },
    });
    expect(exec.structuredContent).toMatchObject({
      exit_code: 0,
      stdout: "key=[REDACTED:API_KEY]\n",
    });
    results.push(exec);
    const unknown = await call(client, "workspace_exec", {
      workspace_id,
      command: ["true"],
      secret_env: { K: "OTHER" },
    });
    expect(unknown.isError).toBe(true);
    expect(JSON.stringify(unknown.content)).toContain("invalid_argument");
    results.push(unknown);
    results.push(await call(client, "workspace_logs", { workspace_id }));
    results.push(await call(client, "workspace_status", { workspace_id }));
    const text = JSON.stringify(results);
    expect(text).not.toContain(VALUE);
    expect(text).not.toContain(Buffer.from(VALUE).toString("base64").slice(0, 16));
    expect(text).toContain("[REDACTED:API_KEY]");
    expect((await call(client, "workspace_delete", { workspace_id })).isError).toBeFalsy();
  });
});
