/**
 * Renders docs/public-contract.md from the contract (src/contract/), so the reference can
 * never drift from the schemas every surface uses. Run after changing an operation:
 *
 *   npx tsx scripts/gen-public-contract.ts
 *
 * test/unit/contract.test.ts renders it again in memory and fails when the file is stale.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import * as prettier from "prettier";
import { z } from "zod";
import {
  DEFAULT_MCP_PROFILE,
  MCP_PROFILES,
  OPERATIONS,
  PROFILE_TOOLS,
  operationsForProfile,
  type AnyOperation,
} from "../src/contract/operations.js";

export const PUBLIC_CONTRACT_PATH = resolve("docs/public-contract.md");

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  pattern?: string;
};

interface Field {
  name: string;
  type: string;
  required: boolean;
  default: unknown;
  description: string;
}

/** The whole reference, formatted the way `prettier --check` wants it. */
export async function renderPublicContract(): Promise<string> {
  const markdown = [
    "# pyro public contract",
    "",
    "<!-- Generated from src/contract/ by scripts/gen-public-contract.ts; do not edit by hand. -->",
    "",
    "Every public operation, as the TypeScript SDK (`Pyro` methods), the MCP server (tools)",
    "and the CLI expose it. The SDK takes one options object with the params below and",
    "returns the result object; MCP tools take the same params as arguments and return the",
    "result as `structuredContent`; the CLI's `--json` prints the same result. Failures",
    "carry one of the listed error codes (MCP: an `isError` result reading `[code] message`;",
    "arguments that do not match the schema are refused before pyro runs, naming each field).",
    "Each operation's annotations are the MCP tool annotations (`title`, `readOnlyHint`,",
    "`destructiveHint`, `idempotentHint`, `openWorldHint`): what a call may do at worst.",
    "",
    "| SDK method | MCP tool | CLI command | what it does |",
    "| --- | --- | --- | --- |",
    ...OPERATIONS.map(
      (op) =>
        `| ${code(op.sdkMethod)} | ${code(op.mcpTool)} | ${code(op.cliCommand && `pyro ${op.cliCommand}`)} | ${cell(op.description)} |`,
    ),
    "",
    ...renderProfiles(),
    ...OPERATIONS.flatMap(renderOperation),
  ].join("\n");
  const options = await prettier.resolveConfig(PUBLIC_CONTRACT_PATH);
  return prettier.format(markdown, { ...options, parser: "markdown" });
}

function renderProfiles(): string[] {
  const lines = [
    "## MCP profiles",
    "",
    `\`pyro mcp serve --profile NAME\` (default \`${DEFAULT_MCP_PROFILE}\`). A profile only`,
    "exposes tools whose operations exist; names marked _(coming)_ join when they land.",
    "",
  ];
  for (const profile of MCP_PROFILES) {
    const available = operationsForProfile(profile).map((op) => op.mcpTool);
    const wanted = PROFILE_TOOLS[profile];
    const names = wanted === "all" ? available : wanted;
    const listed = names.map((t) => (available.includes(t) ? code(t) : `${code(t)} _(coming)_`));
    lines.push(`- \`${profile}\`${wanted === "all" ? " (every tool)" : ""}: ${listed.join(", ")}`);
  }
  return [...lines, ""];
}

function renderOperation(op: AnyOperation): string[] {
  const names = [`SDK ${code(op.sdkMethod)}`];
  if (op.mcpTool) names.push(`MCP ${code(op.mcpTool)}`);
  if (op.cliCommand) names.push(`CLI ${code(`pyro ${op.cliCommand}`)}`);
  const params = fields(z.toJSONSchema(op.params, { io: "input" }) as JsonSchema);
  const result = fields(z.toJSONSchema(op.result, { io: "output" }) as JsonSchema);
  const lines = [`## ${op.sdkMethod}`, "", names.join(" · "), "", op.description, ""];
  lines.push(`Annotations: ${annotationWords(op)}.`, "");
  if (op.coreOmits?.length) {
    lines.push(
      `In the \`workspace-core\` MCP profile this tool leaves out ${op.coreOmits.map(code).join(", ")}.`,
      "",
    );
  }
  lines.push("Params:", "");
  if (params.length === 0) lines.push("none", "");
  else {
    lines.push("| param | type | default | description |", "| --- | --- | --- | --- |");
    for (const f of params) {
      const fallback = f.required ? "required" : f.default === undefined ? "optional" : "";
      const shown = f.default === undefined ? fallback : code(JSON.stringify(f.default));
      lines.push(`| ${code(f.name)} | ${cell(f.type)} | ${shown} | ${cell(f.description)} |`);
    }
    lines.push("");
  }
  lines.push("Result:", "", "| field | type | description |", "| --- | --- | --- |");
  for (const f of result) {
    lines.push(`| ${code(f.name)} | ${cell(f.type)} | ${cell(f.description)} |`);
  }
  lines.push("", `Errors: ${op.errors.map(code).join(", ")}`, "");
  return lines;
}

/** The MCP tool annotations in words: "“Delete a VM”: destructive, idempotent". */
function annotationWords(op: AnyOperation): string {
  const a = op.annotations;
  const words = a.readOnlyHint
    ? ["read-only"]
    : [
        a.destructiveHint ? "destructive" : "non-destructive",
        ...(a.idempotentHint ? ["idempotent"] : []),
      ];
  if (a.openWorldHint) words.push("open world");
  return `title “${a.title}”; ${words.join(", ")}`;
}

/** Fields of an object schema, nested objects flattened to dotted names (`timings.boot_ms`). */
function fields(schema: JsonSchema, prefix = ""): Field[] {
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties ?? {}).flatMap(([name, prop]) => {
    const path = `${prefix}${name}`;
    const field: Field = {
      name: path,
      type: typeName(prop),
      required: required.has(name),
      default: prop.default,
      description: prop.description ?? "",
    };
    const nested = nestedObject(prop);
    return [field, ...(nested ? fields(nested.schema, `${path}${nested.suffix}.`) : [])];
  });
}

function nestedObject(prop: JsonSchema): { schema: JsonSchema; suffix: string } | undefined {
  if (prop.properties) return { schema: prop, suffix: "" };
  if (prop.items?.properties) return { schema: prop.items, suffix: "[]" };
  const inner = prop.anyOf?.find((s) => s.properties);
  return inner ? { schema: inner, suffix: "" } : undefined;
}

function typeName(s: JsonSchema): string {
  const variants = s.anyOf ?? s.oneOf;
  if (variants) {
    // Several object variants are told apart by their fields, `{name, value} | {name,
    // file_path}`, or by a tag: `{type: "file", path} | {type: "tcp", address}`.
    const objects = variants.filter((v) => v.properties).length;
    const field = ([key, prop]: [string, JsonSchema]) =>
      prop.const === undefined ? key : `${key}: ${JSON.stringify(prop.const)}`;
    const variant = (v: JsonSchema) =>
      v.properties && objects > 1
        ? `{${Object.entries(v.properties).map(field).join(", ")}}`
        : typeName(v);
    return variants.map(variant).join(" | ");
  }
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (Array.isArray(s.type)) return s.type.map((type) => typeName({ ...s, type })).join(" | ");
  const bounds = constraints(s);
  switch (s.type) {
    case "array":
      return `${s.items ? arrayItem(s.items) : "unknown"}[]${bounds}`;
    case "object":
      if (s.properties) return "object";
      if (typeof s.additionalProperties === "object") {
        return `record<string, ${typeName(s.additionalProperties)}>`;
      }
      return "object";
    case undefined:
      return "unknown";
    default:
      return `${s.type}${bounds}`;
  }
}

function arrayItem(items: JsonSchema): string {
  const name = typeName(items);
  return name.includes(" ") ? `(${name})` : name;
}

/** Bounds a caller must respect; zod's implicit ±2^53 integer bounds are noise. */
function constraints(s: JsonSchema): string {
  const parts: string[] = [];
  if (s.minimum !== undefined && s.minimum > Number.MIN_SAFE_INTEGER) parts.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) parts.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined && s.maximum < Number.MAX_SAFE_INTEGER) parts.push(`≤ ${s.maximum}`);
  if (s.minLength) parts.push(`length ≥ ${s.minLength}`);
  if (s.maxLength !== undefined) parts.push(`length ≤ ${s.maxLength}`);
  if (s.minItems) parts.push(`at least ${s.minItems}`);
  if (s.pattern) parts.push(`matching \`${s.pattern}\``);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

function code(text: string | undefined): string {
  return text ? `\`${text}\`` : "—";
}

/** Table cells cannot hold a bare `|` or a line break. */
function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  writeFileSync(PUBLIC_CONTRACT_PATH, await renderPublicContract());
  process.stderr.write(`wrote ${PUBLIC_CONTRACT_PATH}\n`);
}
