import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

/** One row entry of CONTRACT.md's "SDK (`Pyro`) and MCP tools" table. */
export interface ContractName {
  sdkMethod: string;
  mcpTool: string | undefined;
}

/** The repo's copy of that table; the shared original is checked against it when present. */
export const CONTRACT_NAMES_FIXTURE = resolve("test/fixtures/contract-names.md");
/**
 * The shared original: `../shared/CONTRACT.md` beside the checkout (as in CI), or wherever
 * PYRO_SHARED_CONTRACT points (a git worktree sits deeper than the checkout).
 */
export const SHARED_CONTRACT = resolve(
  process.env.PYRO_SHARED_CONTRACT ?? resolve("..", "shared", "CONTRACT.md"),
);

export function contractNames(path = CONTRACT_NAMES_FIXTURE): ContractName[] {
  return parseContractNames(readFileSync(path, "utf8"));
}

export function sharedContractExists(): boolean {
  return existsSync(SHARED_CONTRACT);
}

/**
 * Contract operations with no implementation yet, each with what brings it. The contract
 * test fails when one of these gets implemented (remove it here then) and when any other
 * contract operation is missing, so this list only shrinks.
 */
export const NOT_YET_IMPLEMENTED: Readonly<Record<string, string>> = {};

/** Names in the SDK/MCP table that are not operations: exported functions of their own. */
export const NOT_OPERATIONS = ["createServer"] as const;

/**
 * Reads the table's rows: method lists are separated by `,` or `/` (parenthesised notes
 * dropped), tool lists by `,`. Equal lengths pair up in order; a single tool for several
 * methods belongs to the first (`vm_list_environments` is `listEnvironments`; pull,
 * inspect and prune are SDK and CLI only); `—` means no tool.
 */
export function parseContractNames(markdown: string): ContractName[] {
  const rows = markdown
    .split("\n")
    .filter((line) => line.startsWith("|") && !/^\|[\s|:-]+\|$/.test(line))
    .map((line) =>
      line
        .split("|")
        .slice(1, -1)
        .map((cell) => cell.trim()),
    )
    .filter(([methods]) => methods !== "SDK method");
  return rows.flatMap(([methodCell = "", toolCell = ""]) => {
    const methods = methodCell
      .replace(/\([^)]*\)/g, "")
      .split(/[,/]/)
      .map((m) => m.trim())
      .filter(Boolean);
    const tools = toolCell === "—" ? [] : toolCell.split(",").map((t) => t.trim());
    if (tools.length === methods.length) {
      return methods.map((sdkMethod, i) => ({ sdkMethod, mcpTool: tools[i] }));
    }
    if (tools.length <= 1) {
      return methods.map((sdkMethod, i) => ({
        sdkMethod,
        mcpTool: i === 0 ? tools[0] : undefined,
      }));
    }
    throw new Error(`cannot pair methods and tools in CONTRACT.md row: ${methodCell}`);
  });
}

/**
 * The profiles' tool lists as CONTRACT.md states them, written out here rather than taken
 * from PROFILE_TOOLS or operationsForProfile(), which the server itself uses: a tool
 * dropped from (or added to) those must make these tests fail.
 */
export const VM_RUN_TOOLS = ["vm_run"];
export const WORKSPACE_CORE_TOOLS = [
  "vm_run",
  "workspace_create",
  "workspace_list",
  "workspace_status",
  "workspace_update",
  "workspace_exec",
  "workspace_sync_push",
  "workspace_file_list",
  "workspace_file_read",
  "workspace_file_write",
  "workspace_patch_apply",
  "workspace_diff",
  "workspace_export",
  "workspace_reset",
  "workspace_delete",
];
/** workspace-full is "everything": every tool in CONTRACT.md's table not awaiting its issue. */
export const workspaceFullTools = () =>
  contractNames().flatMap((n) =>
    n.mcpTool !== undefined && !(n.sdkMethod in NOT_YET_IMPLEMENTED) ? [n.mcpTool] : [],
  );
