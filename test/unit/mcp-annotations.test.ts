import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { OPERATIONS } from "../../src/contract/operations.js";
import { createServer } from "../../src/mcp/server.js";

/**
 * What each operation may do at worst, written from CONTRACT.md's description of it (not
 * read back from src/contract): R read-only; D destroys or overwrites what existed
 * (files in /workspace, VMs, snapshots, host paths, running processes); I a repeat with
 * the same arguments has no further effect; O guest programs may reach outside networks
 * (it grants network, boots a VM that may have it, or runs guest programs in one; building
 * an environment fetches packages).
 */
const EXPECTED: Record<string, string> = {
  listEnvironments: "R",
  pullEnvironment: "I O", // rebuilds or repairs only pyro's own cache
  inspectEnvironment: "R",
  pruneEnvironments: "D I", // deletes cached images
  runInVm: "O", // its own VM is made and deleted within the call: nothing older is touched
  createVm: "O", // `network`
  startVm: "I O", // boots with the network it was created with
  execVm: "D O", // deletes the VM afterwards; a second call finds none
  stopVm: "D I", // kills what runs in it
  deleteVm: "D I",
  statusVm: "R",
  networkInfoVm: "R",
  reapExpired: "D I",
  createWorkspace: "O", // `network_policy`; each call makes another workspace
  listWorkspaces: "R",
  statusWorkspace: "R",
  updateWorkspace: "I", // only its name and labels, set to the given values
  logsWorkspace: "R",
  deleteWorkspace: "D I",
  stopWorkspace: "D I",
  startWorkspace: "I O",
  execWorkspace: "D O", // any command: it may delete files in /workspace
  pushWorkspaceSync: "D I", // overwrites files under dest
  exportWorkspace: "D I", // `overwrite` replaces a host path
  diffWorkspace: "R",
  resetWorkspace: "D I O", // discards changes, reboots with the workspace's network
  listWorkspaceFiles: "R",
  readWorkspaceFile: "R",
  writeWorkspaceFile: "D I", // replaces the whole file
  applyWorkspacePatch: "D", // a second application of the same patch may apply again
  exportWorkspaceDisk: "D I", // `overwrite` replaces a host path
  listWorkspaceDisk: "R",
  readWorkspaceDisk: "R",
  createSnapshot: "I", // an existing name is refused, never replaced
  listSnapshots: "R",
  deleteSnapshot: "D I",
  startService: "D O", // runs a command, like exec
  listServices: "R",
  statusService: "R",
  logsService: "R",
  stopService: "D I",
  openShell: "", // a new shell each call, running nothing yet
  readShell: "R",
  writeShell: "D O", // typed input runs commands
  signalShell: "D", // INT/KILL end programs; each signal is delivered anew
  closeShell: "D I",
};

function hintsOf(code: string) {
  const has = (letter: string) => code.split(" ").includes(letter);
  const readOnly = has("R");
  return {
    readOnlyHint: readOnly,
    destructiveHint: has("D"),
    idempotentHint: readOnly || has("I"),
    openWorldHint: has("O"),
  };
}

const NETWORK_PARAMS = ["network", "network_policy", "allowed_domains"];
const READ_VERBS = /^(list|status|read|diff|logs|inspect|network_info)\b/;
const DESTRUCTIVE_VERBS = /^(delete|stop|reset|close|prune)\b/;
/** `vm_list_environments` -> "list_environments", `workspace_file_read` -> "read". */
const verbOf = (tool: string) =>
  tool
    .replace(/^(vm|workspace|snapshot|service|shell)_/, "")
    .replace(/^(file|disk|sync|patch)_/, "");

describe("MCP tool annotations follow each operation's meaning", () => {
  it("match the expectation for every operation it names", () => {
    for (const op of OPERATIONS) {
      const expected = EXPECTED[op.sdkMethod];
      if (expected === undefined) continue; // operations added later: the rules below
      expect(op.annotations, op.sdkMethod).toEqual({
        title: op.annotations.title,
        ...hintsOf(expected),
      });
    }
  });

  it("keeps the rules for every operation, including ones added later", () => {
    for (const op of OPERATIONS) {
      const a = op.annotations;
      const name = op.sdkMethod;
      expect(a.title.trim(), name).not.toBe("");
      if (a.readOnlyHint) {
        expect([a.destructiveHint, a.idempotentHint, a.openWorldHint], name).toEqual([
          false,
          true,
          false,
        ]);
      }
      const params = Object.keys((op.params as z.ZodObject).shape);
      if (params.some((p) => NETWORK_PARAMS.includes(p))) expect(a.openWorldHint, name).toBe(true);
      if (op.mcpTool === undefined) continue;
      const verb = verbOf(op.mcpTool);
      if (READ_VERBS.test(verb)) expect(a.readOnlyHint, op.mcpTool).toBe(true);
      if (DESTRUCTIVE_VERBS.test(verb)) expect(a.destructiveHint, op.mcpTool).toBe(true);
    }
  });

  it("reach a real MCP client, with the title, on every tool", async () => {
    const server = createServer({ profile: "workspace-full" });
    const client = new Client({ name: "pyro-annotations-test", version: "0" });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
    const tools: Tool[] = (await client.listTools()).tools;
    expect(tools.length).toBeGreaterThan(30);
    for (const tool of tools) {
      const op = OPERATIONS.find((o) => o.mcpTool === tool.name);
      expect(tool.annotations, tool.name).toEqual(op?.annotations);
      expect(tool.title, tool.name).toBe(op?.annotations.title);
    }
    const byName = (name: string) => tools.find((t) => t.name === name)?.annotations;
    expect(byName("workspace_file_read")).toMatchObject({ readOnlyHint: true });
    expect(byName("workspace_delete")).toMatchObject({ destructiveHint: true });
    expect(byName("vm_run")).toMatchObject({ readOnlyHint: false, openWorldHint: true });
    await client.close();
  });
});

describe("the annotations rules themselves", () => {
  it("read tool verbs as the contract spells them", () => {
    expect(verbOf("workspace_file_read")).toBe("read");
    expect(verbOf("vm_list_environments")).toBe("list_environments");
    expect(verbOf("vm_network_info")).toBe("network_info");
    expect(verbOf("snapshot_delete")).toBe("delete");
    expect(READ_VERBS.test(verbOf("workspace_disk_list"))).toBe(true);
    expect(READ_VERBS.test(verbOf("workspace_create"))).toBe(false);
  });
});
