export { Pyro, type OutputHandlers, type PyroOptions } from "./sdk/pyro.js";
export { createServer, type CreateServerOptions } from "./mcp/lazy-server.js";
export { PyroError, isPyroError, ERROR_CODES, type ErrorCode } from "./contract/errors.js";
export { MCP_PROFILES, type McpProfile } from "./contract/profiles.js";
export type { RunParamsInput as RunOptions, RunResultValue as RunResult } from "./contract/vm.js";
export type { ProgressEvent, ProgressSink } from "./util/progress.js";
