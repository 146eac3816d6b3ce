import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { z } from "zod";
import { PyroError } from "../contract/errors.js";
import type { ShellRecord as ShellRecordSchema } from "../contract/shells.js";
import { NAME_PATTERN } from "../contract/workspace.js";
import { readJsonIfExists, writeJsonAtomic } from "../util/fs.js";
import { workspaceDir } from "./workspace-store.js";

/**
 * Shell records: `PYRO_HOME/workspaces/<id>/shells/<shell_id>.json`, one per shell the
 * host opened. The guest agent is the authority on whether a shell still lives; a record
 * says what the host knows of it (cwd, size, how it ended) between calls of different
 * processes. A workspace's stop, reset and delete clear them.
 */

export type ShellRecord = z.output<typeof ShellRecordSchema>;

function shellsDir(workspaceId: string): string {
  return join(workspaceDir(workspaceId), "shells");
}

function shellFile(workspaceId: string, shellId: string): string {
  // Ids are checked against NAME_PATTERN before they get here: no separators, no "..".
  if (!NAME_PATTERN.test(shellId)) throw new PyroError("invalid_argument", "bad shell id");
  return join(shellsDir(workspaceId), `${shellId}.json`);
}

export async function readShellRecord(workspaceId: string, shellId: string): Promise<ShellRecord> {
  const record = await readJsonIfExists<ShellRecord>(shellFile(workspaceId, shellId));
  if (!record) {
    throw new PyroError(
      "not_found",
      `workspace ${workspaceId} has no shell "${shellId}"; open one with \`pyro workspace shell open ${workspaceId}\` (MCP: shell_open)`,
      { details: { workspace_id: workspaceId, shell_id: shellId } },
    );
  }
  return record;
}

export async function hasShellRecord(workspaceId: string, shellId: string): Promise<boolean> {
  return (await readJsonIfExists<unknown>(shellFile(workspaceId, shellId))) !== undefined;
}

export async function writeShellRecord(record: ShellRecord): Promise<void> {
  const dir = shellsDir(record.workspace_id);
  // Not recursive: a workspace deleted meanwhile must not get its directory back.
  await mkdir(dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "EEXIST") throw error;
  });
  await writeJsonAtomic(shellFile(record.workspace_id, record.shell_id), record, 0o600, {
    createParent: false,
  });
}

export async function removeShellRecord(workspaceId: string, shellId: string): Promise<void> {
  await rm(shellFile(workspaceId, shellId), { force: true });
}

/** Every shell record of a workspace goes: its VM stopped, so its shells ended. */
export async function clearShellRecords(workspaceId: string): Promise<void> {
  await rm(shellsDir(workspaceId), { recursive: true, force: true });
}

export async function countShellRecords(workspaceId: string): Promise<number> {
  const names = await readdir(shellsDir(workspaceId)).catch(() => [] as string[]);
  return names.filter((name) => name.endsWith(".json")).length;
}
