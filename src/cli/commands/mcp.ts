import { InvalidArgumentError, Option, type Command } from "commander";
import { DEFAULT_MCP_PROFILE, MCP_PROFILES, type McpProfile } from "../../contract/operations.js";
import { reportError, UsageError } from "../output.js";

/** Commander's way to take a repeatable option: each use adds one value. */
const collect = (value: string, previous: string[] = []) => [...previous, value];

interface ServeOptions {
  profile: McpProfile;
  allowHostPath?: string[];
  http?: string;
  tokenFile?: string;
  sessionIdleSeconds?: number;
}

/**
 * `pyro mcp serve [--profile ...] [--allow-host-path DIR]... [--http [HOST:]PORT
 * [--token-file F]]`: the MCP server on stdio, for MCP hosts to spawn, or over HTTP.
 */
export function registerMcp(program: Command): void {
  const mcp = program.command("mcp").description("Serve pyro's tools to MCP clients.");
  mcp
    .command("serve")
    .description(
      "Run the MCP server on stdin/stdout until the client disconnects, or with --http on " +
        "an HTTP port until stopped. Logs go to stderr.",
    )
    .addOption(
      new Option("--profile <profile>", "which tools to expose")
        .choices(MCP_PROFILES)
        .default(DEFAULT_MCP_PROFILE),
    )
    .option(
      "--allow-host-path <dir>",
      "let tools use host paths under DIR too (repeatable); by default only the directory " +
        "the server starts in and the client's roots",
      collect,
    )
    .option(
      "--http <[host:]port>",
      "serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio (host default 127.0.0.1; " +
        "every request needs the bearer token)",
    )
    .option(
      "--token-file <file>",
      "with --http: read the bearer token from FILE (mode 0600) instead of the one generated " +
        "in PYRO_HOME/mcp-http.token",
    )
    .option(
      "--session-idle-seconds <n>",
      "with --http: end a session (and delete what it created) after N seconds without a request",
      positiveInteger,
    )
    .action(async (options: ServeOptions) => {
      try {
        await serve(options);
      } catch (error) {
        process.exitCode = reportError(error, { json: false });
      }
    });
}

async function serve(options: ServeOptions): Promise<void> {
  const allowHostPaths = options.allowHostPath ?? [];
  if (options.http === undefined) {
    if (options.tokenFile !== undefined || options.sessionIdleSeconds !== undefined) {
      throw new UsageError("--token-file and --session-idle-seconds need --http");
    }
    // Loaded on use: the MCP SDK would add ~70 ms to every other command's start.
    const { serveStdio } = await import("../../mcp/stdio.js");
    return serveStdio({ profile: options.profile, allowHostPaths });
  }
  const { serveHttp } = await import("../../mcp/http.js");
  await serveHttp({
    profile: options.profile,
    allowHostPaths,
    listen: options.http,
    ...(options.tokenFile !== undefined ? { tokenFile: options.tokenFile } : {}),
    ...(options.sessionIdleSeconds !== undefined
      ? { sessionIdleSeconds: options.sessionIdleSeconds }
      : {}),
  });
}

function positiveInteger(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < 1 || number > 86_400) {
    throw new InvalidArgumentError("expected a whole number of seconds from 1 to 86400");
  }
  return number;
}
