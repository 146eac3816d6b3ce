import { Option, type Command } from "commander";
import { DEFAULT_MCP_PROFILE, MCP_PROFILES, type McpProfile } from "../../contract/operations.js";
import { reportError } from "../output.js";

/** Commander's way to take a repeatable option: each use adds one value. */
const collect = (value: string, previous: string[] = []) => [...previous, value];

/**
 * `pyro mcp serve [--profile ...] [--allow-host-path DIR]...`: the MCP server on stdio,
 * for MCP hosts to spawn.
 */
export function registerMcp(program: Command): void {
  const mcp = program.command("mcp").description("Serve pyro's tools to MCP clients.");
  mcp
    .command("serve")
    .description(
      "Run the MCP server on stdin/stdout until the client disconnects. Logs go to stderr.",
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
    .action(async (options: { profile: McpProfile; allowHostPath?: string[] }) => {
      try {
        // Loaded on use: the MCP SDK would add ~70 ms to every other command's start.
        const { serveStdio } = await import("../../mcp/stdio.js");
        await serveStdio({ profile: options.profile, allowHostPaths: options.allowHostPath ?? [] });
      } catch (error) {
        process.exitCode = reportError(error, { json: false });
      }
    });
}
