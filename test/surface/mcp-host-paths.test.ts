import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, describe, expect, it } from "vitest";
import { CLI_ENTRY, runCli } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";

const home = isolatedHome();
// The MCP host's view: a project directory the server is started in, and a file of the
// user's elsewhere (think ~/.bashrc) that a prompt-injected model aims export at.
const base = realpathSync(mkdtempSync(join(tmpdir(), "mcp-host-paths-surface-")));
const project = join(base, "project");
const outside = join(base, "outside");
const victim = join(outside, "victim.txt");
const clients: Client[] = [];
let workspaceId: string | undefined;

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close().catch(() => {})));
  // A failed assertion must not leave the workspace's VM running.
  if (workspaceId) await runCli(["workspace", "delete", workspaceId], { PYRO_HOME: home });
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
  rmSync(base, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

/** `pyro mcp serve` spawned in the project directory, as an MCP host starts it. */
async function serve(args: string[] = []): Promise<Client> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] => entry[0].startsWith("PYRO_") && entry[1] !== undefined,
    ),
  );
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI_ENTRY, "mcp", "serve", ...args],
    cwd: project,
    env: { ...env, PYRO_HOME: home, PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
  });
  const client = new Client({ name: "pyro-host-paths-surface", version: "0" });
  await client.connect(transport);
  clients.push(client);
  return client;
}

async function call(client: Client, name: string, args: Record<string, unknown>) {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const text = result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- payloads are checked by matchers
  return { isError: result.isError === true, text, value: result.structuredContent as any };
}

describe("pyro mcp serve confines host paths to its roots", () => {
  it("refuses an export outside its directory and allows it with --allow-host-path", async () => {
    mkdirSync(join(project, "seed", "src"), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(project, "seed", "src", "main.py"), "print('from the guest')\n");
    writeFileSync(victim, "the user's own file\n");

    const confined = await serve();
    // A relative seed path resolves from the directory the server was started in.
    const created = await call(confined, "workspace_create", {
      environment: "debian:12-base",
      seed_path: "seed",
      mem_mib: 512,
    });
    expect(created.isError, created.text).toBe(false);
    const id = created.value.workspace_id as string;
    workspaceId = id;
    expect(created.value.workspace_seed.seed_path).toBe(join(project, "seed"));

    const exportArgs = { workspace_id: id, path: "src/main.py", overwrite: true };
    for (const output_path of [victim, "../outside/victim.txt"]) {
      const refused = await call(confined, "workspace_export", { ...exportArgs, output_path });
      expect(refused.isError).toBe(true);
      expect(refused.text).toMatch(/^\[invalid_argument\] output_path /);
      expect(refused.text).toContain(victim);
      expect(refused.text).toContain(project);
      expect(refused.text).toContain("--allow-host-path");
    }
    const pushed = await call(confined, "workspace_sync_push", {
      workspace_id: id,
      source_path: outside,
    });
    expect(pushed.text).toMatch(/^\[invalid_argument\] source_path /);
    expect(readFileSync(victim, "utf8")).toBe("the user's own file\n");

    const widened = await serve(["--allow-host-path", outside]);
    const exported = await call(widened, "workspace_export", {
      ...exportArgs,
      output_path: victim,
    });
    expect(exported.isError, exported.text).toBe(false);
    expect(exported.value.output_path).toBe(victim);
    expect(readFileSync(victim, "utf8")).toBe("print('from the guest')\n");

    expect((await call(widened, "workspace_delete", { workspace_id: id })).isError).toBe(false);
    workspaceId = undefined;
  });
});
