import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { operationsForProfile, type McpProfile } from "../../src/contract/operations.js";
import { createServer } from "../../src/mcp/server.js";
import {
  VM_RUN_TOOLS,
  WORKSPACE_CORE_TOOLS,
  workspaceFullTools,
} from "../helpers/contract-names.js";

/** A real MCP client talking to the real server over the SDK's in-memory linked pair. */
async function connect(profile?: McpProfile) {
  const server = createServer(profile === undefined ? {} : { profile });
  const client = new Client({ name: "pyro-unit-test", version: "0" });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
  return client;
}

const toolNames = async (client: Client) => (await client.listTools()).tools.map((t) => t.name);
const text = (result: CallToolResult) =>
  result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");

// vm_status reads PYRO_HOME: point it at an empty directory, never at real state.
const previousHome = process.env.PYRO_HOME;
const home = mkdtempSync(join(tmpdir(), "pyro-mcp-unit-"));
beforeAll(() => {
  process.env.PYRO_HOME = home;
});
afterAll(() => {
  if (previousHome === undefined) delete process.env.PYRO_HOME;
  else process.env.PYRO_HOME = previousHome;
  rmSync(home, { recursive: true, force: true });
});

const sorted = (names: string[]) => [...names].sort();

describe("MCP tool lists per profile", () => {
  it("vm-run exposes only vm_run", async () => {
    expect(await toolNames(await connect("vm-run"))).toEqual(VM_RUN_TOOLS);
  });

  it("workspace-core (the default) exposes exactly the contract's core tools", async () => {
    expect(sorted(await toolNames(await connect("workspace-core")))).toEqual(
      sorted(WORKSPACE_CORE_TOOLS),
    );
    expect(sorted(await toolNames(await connect()))).toEqual(sorted(WORKSPACE_CORE_TOOLS));
  });

  it("workspace-full exposes every contract tool that is implemented, and nothing else", async () => {
    const expected = workspaceFullTools();
    expect(expected).toEqual(expect.arrayContaining(WORKSPACE_CORE_TOOLS));
    expect(sorted(await toolNames(await connect("workspace-full")))).toEqual(sorted(expected));
  });

  it("refuses an unknown profile, listing the valid ones", () => {
    expect(() => createServer({ profile: "everything" as McpProfile })).toThrow(
      /unknown MCP profile "everything"; use one of vm-run, workspace-core, workspace-full/,
    );
  });
});

describe("MCP tool schemas come from the contract", () => {
  let tools: Tool[] = [];
  beforeAll(async () => {
    tools = (await (await connect("workspace-full")).listTools()).tools;
  });

  it("gives every tool the contract's description and params and result fields", () => {
    for (const op of operationsForProfile("workspace-full")) {
      const tool = tools.find((t) => t.name === op.mcpTool);
      expect(tool?.description, op.mcpTool).toBe(op.description);
      const params = Object.keys((op.params as z.ZodObject).shape);
      const result = Object.keys((op.result as z.ZodObject).shape);
      expect(Object.keys(tool?.inputSchema.properties ?? {}), op.mcpTool).toEqual(params);
      expect(Object.keys(tool?.outputSchema?.properties ?? {}), op.mcpTool).toEqual(result);
    }
  });

  it("leaves the fields an operation's coreOmits names out of its workspace-core tool", async () => {
    const core = (await (await connect("workspace-core")).listTools()).tools;
    for (const op of operationsForProfile("workspace-core")) {
      const listed = Object.keys(
        core.find((t) => t.name === op.mcpTool)?.inputSchema.properties ?? {},
      );
      for (const field of op.coreOmits ?? []) expect(listed, op.mcpTool).not.toContain(field);
    }
  });

  it("publishes vm_run's defaults and required fields", () => {
    const schema = tools.find((t) => t.name === "vm_run")?.inputSchema;
    const props = schema?.properties as Record<string, { default?: unknown; type?: string }>;
    expect(schema?.required).toEqual(["environment", "command"]);
    expect(props.timeout_seconds?.default).toBe(30);
    expect(props.mem_mib?.default).toBe(1024);
    expect(props.vcpu_count?.default).toBe(1);
    expect(props.ttl_seconds?.default).toBe(600);
    expect(props.network?.default).toBe(false);
    expect(props.command?.type).toBe("array");
  });

  it("publishes every contract default, for every tool", () => {
    for (const op of operationsForProfile("workspace-full")) {
      const props = tools.find((t) => t.name === op.mcpTool)?.inputSchema.properties ?? {};
      for (const [field, schema] of Object.entries((op.params as z.ZodObject).shape)) {
        const fallback = (schema as z.ZodType).safeParse(undefined);
        if (!fallback.success || fallback.data === undefined) continue;
        expect((props[field] as { default?: unknown }).default, `${op.mcpTool}.${field}`).toEqual(
          fallback.data,
        );
      }
    }
  });
});

describe("MCP tool calls", () => {
  it("refuses vm_run arguments that break the contract, naming the field", async () => {
    const client = await connect("vm-run");
    const call = (args: Record<string, unknown>) =>
      client.callTool({ name: "vm_run", arguments: args }) as Promise<CallToolResult>;
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { environment: "debian:12", command: [] },
        /command needs at least one element.* at command/,
      ],
      [{ environment: "debian:12", command: ["true"], mem_mib: 1 }, />=128 at mem_mib/],
      [{ command: ["true"] }, /at environment/],
    ];
    for (const [args, message] of cases) {
      const result = await call(args);
      expect(result.isError, JSON.stringify(args)).toBe(true);
      expect(text(result)).toMatch(message);
    }
  });

  it("reports an unknown VM as a not_found error result the model can read", async () => {
    const client = await connect("workspace-full");
    const result = (await client.callTool({
      name: "vm_status",
      arguments: { vm_id: "vm_0123456789ab" },
    })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/^\[not_found\] no VM with id "vm_0123456789ab"/);
  });

  it("returns structured content matching the output schema, with the same facts as text", async () => {
    const client = await connect("workspace-full");
    await client.listTools(); // the client validates structuredContent once it knows the schema
    const result = (await client.callTool({
      name: "vm_list_environments",
      arguments: {},
    })) as CallToolResult;
    expect(result.isError).toBeFalsy();
    const { environments } = result.structuredContent as { environments: { name: string }[] };
    expect(environments.map((e) => e.name)).toContain("debian:12");
    expect(JSON.parse(text(result))).toEqual(result.structuredContent);
  });
});
