import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { McpProfile } from "../contract/operations.js";
import { allowedDirectories, startDirectoryRoots } from "./roots.js";
import { createServer } from "./server.js";

/**
 * `pyro mcp serve`: the server on stdin/stdout until the client goes away.
 *
 * The process must end as soon as the client does: the VM of an in-flight vm_run is owned
 * by this process's connection to the VM's supervisor, which deletes the VM when that
 * connection closes. The SDK's stdio transport never notices stdin closing (it only
 * listens for data), so without the hooks below an in-flight call would keep the process,
 * and its VM, alive after the client quit (test/surface/mcp-stdio.test.ts).
 */
export async function serveStdio(options: {
  profile: McpProfile;
  /** `--allow-host-path` directories, added to the start directory as host-path roots. */
  allowHostPaths?: readonly string[];
}): Promise<void> {
  const hostPathRoots = [
    ...startDirectoryRoots(),
    ...allowedDirectories(options.allowHostPaths ?? []),
  ];
  const server = createServer({ profile: options.profile, hostPathRoots });
  const transport = new StdioServerTransport();
  const exit = (code: number) => process.exit(code);
  server.server.onclose = () => exit(0);
  transport.onerror = (error) => log(`phase=error detail=${JSON.stringify(error.message)}`);
  process.stdin.once("end", () => void server.close());
  process.stdin.once("close", () => void server.close());
  // A vanished client leaves a broken pipe on stdout; nobody is left to answer.
  process.stdout.once("error", () => exit(0));
  // Explicit so that no handler added elsewhere can turn these into "keep running".
  process.once("SIGTERM", () => exit(128 + 15));
  process.once("SIGINT", () => exit(128 + 2));
  process.once("SIGHUP", () => exit(128 + 1));
  await server.connect(transport);
  const roots = hostPathRoots.length ? hostPathRoots.join(",") : "none";
  log(`phase=serve profile=${options.profile} transport=stdio host_paths=${JSON.stringify(roots)}`);
}

/** stdout carries only the protocol; everything for humans goes to stderr. */
function log(line: string): void {
  process.stderr.write(`[mcp] ${line}\n`);
}
