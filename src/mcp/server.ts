import { McpServer, type ToolCallback } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { PyroError } from "../contract/errors.js";
import {
  DEFAULT_MCP_PROFILE,
  MCP_PROFILES,
  operationsForProfile,
  type AnyOperation,
  type McpProfile,
} from "../contract/operations.js";
import { Pyro } from "../sdk/pyro.js";
import { packageVersion } from "../util/version.js";
import { progressForRequest } from "./progress.js";
import { errorResult, successResult } from "./results.js";
import { ClientRoots, startDirectoryRoots } from "./roots.js";

export interface CreateServerOptions {
  /**
   * Which tools to expose: `vm-run` (only `vm_run`), `workspace-core` (one-shot runs plus
   * the stable workspace tools) or `workspace-full` (every tool). @default "workspace-core"
   */
  profile?: McpProfile;
  /**
   * Host directories the tools may read from or write to (`seed_path`, `source_path`,
   * `output_path`...), in addition to the client's `roots/list` when it offers roots.
   * Paths elsewhere, after resolving `..` and symlinks, are refused. `pyro mcp serve`
   * passes its start directory plus every `--allow-host-path`.
   * @default [process.cwd()], or none when that is `/`
   */
  hostPathRoots?: readonly string[];
}

/** What every tool handler of one server shares. */
interface ServerContext {
  profile: McpProfile;
  hostPathRoots: () => Promise<readonly string[]>;
}

/** Facade methods take the params, and commands also `{ signal }` to stop on cancellation. */
type FacadeMethod = (
  this: Pyro,
  params: unknown,
  calls: { signal: AbortSignal },
) => Promise<unknown>;

/**
 * The pyro MCP server: one tool per contract operation of the profile, with the
 * contract's name, description and params/result schemas, each calling the `Pyro` facade
 * method of the same operation. Connect it to a transport (`pyro mcp serve` uses stdio).
 */
export function createServer(options: CreateServerOptions = {}): McpServer {
  const profile = options.profile ?? DEFAULT_MCP_PROFILE;
  if (!MCP_PROFILES.includes(profile)) {
    throw new PyroError(
      "invalid_argument",
      `unknown MCP profile "${String(profile)}"; use one of ${MCP_PROFILES.join(", ")}`,
      { details: { field: "profile", allowed: [...MCP_PROFILES] } },
    );
  }
  const server = new McpServer({ name: "pyro", version: packageVersion });
  const own = [...(options.hostPathRoots ?? startDirectoryRoots())];
  const client = new ClientRoots(server.server);
  const context: ServerContext = {
    profile,
    hostPathRoots: async () => [...own, ...(await client.directories())],
  };
  for (const op of operationsForProfile(profile)) registerOperation(server, op, context);
  return server;
}

function registerOperation(server: McpServer, op: AnyOperation, context: ServerContext): void {
  const tool = op.mcpTool;
  const method = Pyro.prototype[op.sdkMethod as keyof Pyro] as FacadeMethod | undefined;
  const params = profileParams(op, context.profile);
  const result: z.ZodType = op.result;
  // MCP tool arguments and results are JSON objects, so the contract's must be z.object()s.
  if (!tool || typeof method !== "function" || !isObject(params) || !isObject(result)) {
    throw new Error(`operation ${op.sdkMethod} cannot be an MCP tool: check src/contract`);
  }
  const handler: ToolCallback<z.ZodObject> = async (args, extra) => {
    // One facade per call so concurrent calls' progress never mixes. Host paths in the
    // arguments come from a model: they are confined to the server's and client's roots.
    const pyro = new Pyro({
      progress: progressForRequest(extra),
      hostPathRoots: context.hostPathRoots,
    });
    try {
      return successResult(
        conforming(result, await method.call(pyro, args, { signal: extra.signal }), tool),
      );
    } catch (error) {
      return errorResult(error, tool);
    }
  };
  // The zod objects themselves, not their shapes: the SDK accepts zod 4 objects and then
  // validates with exactly the contract's schema (object-level refinements included).
  // Annotations (read-only, destructive, idempotent, open world) let a host decide what
  // to run without asking; they come from the contract like everything else here.
  server.registerTool(
    tool,
    {
      title: op.annotations.title,
      description: op.description,
      inputSchema: params,
      outputSchema: result,
      annotations: op.annotations,
    },
    handler,
  );
}

/**
 * The params schema a profile shows. `workspace-core` narrows some tools (workspace_create
 * without secrets or network policy) so a model cannot reach for them; the facade then
 * applies those fields' defaults.
 */
function profileParams(op: AnyOperation, profile: McpProfile): z.ZodType {
  const params: z.ZodType = op.params;
  if (profile !== "workspace-core" || !op.coreOmits?.length || !isObject(params)) return params;
  const mask = Object.fromEntries(op.coreOmits.map((field) => [field, true]));
  return params.omit(mask as Parameters<typeof params.omit>[0]);
}

/** The facade's result as the contract defines it, or an `internal` error naming the gap. */
function conforming(schema: z.ZodObject, value: unknown, tool: string): Record<string, unknown> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(result)"}: ${i.message}`);
  throw new PyroError(
    "internal",
    `${tool} produced a result that does not match its contract (${issues.join("; ")}); this is a pyro bug, please report it`,
  );
}

function isObject(schema: z.ZodType): schema is z.ZodObject {
  return schema instanceof z.ZodObject;
}
