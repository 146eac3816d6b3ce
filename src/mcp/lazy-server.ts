import { createRequire } from "node:module";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type * as server from "./server.js";

export type { CreateServerOptions } from "./server.js";

/**
 * The SDK entry's `createServer`. The MCP SDK, zod and every operation's schema cost
 * hundreds of milliseconds to load (issue 10, "Start-up cost"), and most SDK users never
 * make a server, so `server.ts` loads on the first call instead of at import. The call
 * stays synchronous because Node (>= 20.19, package.json `engines`) can `require()` an
 * ES module whose graph has no top-level await; the module cache is the same one
 * `import` uses, so the classes are the very ones an `import` would see.
 */
const requireModule = createRequire(import.meta.url);

/**
 * Run from the TypeScript sources (vitest, tsx), `require` cannot load `server.ts`, so
 * there the module is imported up front instead: start-up cost does not matter there,
 * and the published `dist/` never takes this branch.
 */
const fromSource = import.meta.url.endsWith(".ts") ? await import("./server.js") : undefined;

/**
 * The pyro MCP server: one tool per contract operation of the profile, with the
 * contract's name, description and params/result schemas, each calling the `Pyro` facade
 * method of the same operation. Connect it to a transport (`pyro mcp serve` uses stdio).
 * @throws PyroError `invalid_argument` for an unknown profile
 */
export function createServer(options: server.CreateServerOptions = {}): McpServer {
  const loaded = fromSource ?? (requireModule("./server.js") as typeof server);
  return loaded.createServer(options);
}
