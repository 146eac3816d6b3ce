import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { integer } from "../../src/contract/fields.js";
import { OPERATIONS } from "../../src/contract/operations.js";
import { createServer } from "../../src/mcp/server.js";

type Node = Record<string, unknown>;

/** Every schema node under `schema`, with a JSON-pointer-like path for messages. */
function nodes(schema: unknown, path = "#"): { node: Node; path: string }[] {
  if (Array.isArray(schema)) return schema.flatMap((s, i) => nodes(s, `${path}/${i}`));
  if (typeof schema !== "object" || schema === null) return [];
  const node = schema as Node;
  const children = Object.entries(node).flatMap(([key, value]) =>
    key === "default" || key === "const" || key === "enum" ? [] : nodes(value, `${path}/${key}`),
  );
  return [{ node, path }, ...children];
}

const isInteger = (node: Node) =>
  node.type === "integer" || (Array.isArray(node.type) && node.type.includes("integer"));
const SAFE = Number.MAX_SAFE_INTEGER;
const noise = (node: Node) =>
  [node.minimum, node.maximum, node.exclusiveMinimum, node.exclusiveMaximum].some(
    (bound) => bound === SAFE || bound === -SAFE,
  );

/**
 * Params whose upper bound depends on the host or has no meaning, and so has none in the
 * schema (the core checks the host-dependent ones and says the limit): named here so a
 * new unbounded param is a decision, not an accident.
 */
const UNBOUNDED_ABOVE = new Set(["vcpu_count", "mem_mib", "cursor"]);

function problems(name: string, schema: unknown, io: "input" | "output"): string[] {
  const found: string[] = [];
  for (const { node, path } of nodes(schema)) {
    if (noise(node)) found.push(`${name} ${io} ${path}: safe-integer bound shown`);
    if (!isInteger(node)) continue;
    if (node.minimum === undefined && node.exclusiveMinimum === undefined) {
      found.push(`${name} ${io} ${path}: integer without a minimum`);
    }
    const field = path.split("/").at(-1) ?? "";
    if (io === "input" && node.maximum === undefined && !UNBOUNDED_ABOVE.has(field)) {
      found.push(`${name} ${io} ${path}: param integer without a maximum`);
    }
  }
  return found;
}

describe("JSON Schemas shown to MCP clients", () => {
  let tools: Tool[] = [];
  beforeAll(async () => {
    const server = createServer({ profile: "workspace-full" });
    const client = new Client({ name: "pyro-schema-test", version: "0" });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
    tools = (await client.listTools()).tools;
    await client.close();
  });

  it("give every integer of every tool its real bounds, and no safe-integer noise", () => {
    expect(tools.length).toBeGreaterThan(30);
    const found = tools.flatMap((tool) => [
      ...problems(tool.name, tool.inputSchema, "input"),
      ...problems(tool.name, tool.outputSchema, "output"),
    ]);
    expect(found).toEqual([]);
    expect(JSON.stringify(tools)).not.toContain(String(SAFE));
  });

  it("show the bounds the contract states, e.g. vm_run's timeout and a result's exit code", () => {
    const run = tools.find((t) => t.name === "vm_run")!;
    const props = (schema: unknown) => (schema as { properties: Record<string, Node> }).properties;
    expect(props(run.inputSchema).timeout_seconds).toMatchObject({
      type: "integer",
      minimum: 1,
      maximum: 86400,
    });
    expect(props(run.inputSchema).vcpu_count).toMatchObject({ type: "integer", minimum: 1 });
    expect(props(run.outputSchema).exit_code).toEqual({
      type: "integer",
      minimum: 0,
      maximum: 255,
      description: expect.any(String),
    });
  });

  it("keep the same rules for operations that are not MCP tools (the SDK and CLI's docs)", () => {
    const found = OPERATIONS.filter((op) => op.mcpTool === undefined).flatMap((op) => [
      ...problems(op.sdkMethod, z.toJSONSchema(op.params, { io: "input" }), "input"),
      ...problems(op.sdkMethod, z.toJSONSchema(op.result, { io: "output" }), "output"),
    ]);
    expect(found).toEqual([]);
  });
});

describe("integer() fields", () => {
  it("accept whole numbers in range and refuse fractions, values below min and unsafe ones", () => {
    const open = integer(0);
    expect(open.safeParse(0).success).toBe(true);
    expect(open.safeParse(2 ** 40).success).toBe(true);
    expect(open.safeParse(1.5).success).toBe(false);
    expect(open.safeParse(-1).success).toBe(false);
    expect(open.safeParse(2 ** 53).success).toBe(false);
    expect(open.safeParse(Number.NaN).success).toBe(false);
    const closed = integer(1, 10);
    expect([0, 1, 10, 11, 2.5].map((n) => closed.safeParse(n).success)).toEqual([
      false,
      true,
      true,
      false,
      false,
    ]);
  });

  it("render as integer with only the bounds given", () => {
    expect(z.toJSONSchema(integer(0))).toMatchObject({ type: "integer", minimum: 0 });
    expect(z.toJSONSchema(integer(0))).not.toHaveProperty("maximum");
    expect(z.toJSONSchema(integer(1, 10).default(3))).toMatchObject({
      type: "integer",
      minimum: 1,
      maximum: 10,
      default: 3,
    });
  });
});
