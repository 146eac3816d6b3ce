import { appendFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { z } from "zod";
import type {
  JournalEntry,
  WorkspaceRecord as WorkspaceRecordSchema,
} from "../contract/workspace.js";
import { WORKSPACE_ROOT } from "../workspace/paths.js";
import { expiresAt, SandboxStore } from "./records.js";

export type WorkspaceRecord = z.output<typeof WorkspaceRecordSchema>;
export type JournalEntryValue = z.output<typeof JournalEntry>;

/** Workspace records: the sandbox core's store, with what workspaces say and keep. */
export const workspaceStore = new SandboxStore<WorkspaceRecord>({
  noun: "workspace",
  idKind: "workspace",
  idOf: (record) => record.workspace_id,
  missingHint: "list them with workspace_list",
  endedError: "the workspace's VM ended unexpectedly; start it again with workspace_start",
  persistReconciled: true,
  // Services and shells end with the VM; their own records are reconciled by their managers.
  endedFields: { running_service_count: 0 },
  // Idle workspaces are paused (a driver that cannot save stops them instead).
  launch: { ttl_action: "pause", workspace_root: WORKSPACE_ROOT },
  startedFields: activity,
});

/** A call through pyro: the idle TTL counts from here. */
export function activity(
  record: Pick<WorkspaceRecord, "ttl_seconds">,
  nowIso = new Date().toISOString(),
) {
  return { last_activity_at: nowIso, expires_at: expiresAt(nowIso, record.ttl_seconds) };
}

/** Files of a workspace beyond the ones every sandbox has (see shim/launch.ts vmFiles). */
export function workspaceFiles(dir: string) {
  return {
    baseline: join(dir, "baseline.tar"),
    snapshots: join(dir, "snapshots"),
    snapshot: (name: string) => join(dir, "snapshots", `${name}.tar`),
    journal: join(dir, "journal.jsonl"),
  };
}

// The store's operations that services and shells build on, by their workspace names.
export const workspaceDir = (id: string) => workspaceStore.dir(id);
export const loadWorkspace = (id: string) => workspaceStore.load(id);
export const updateWorkspaceRecord = (
  id: string,
  change: (record: WorkspaceRecord) => WorkspaceRecord,
) => workspaceStore.update(id, change);

export async function appendJournal(workspaceId: string, entry: JournalEntryValue): Promise<void> {
  await appendFile(
    workspaceFiles(workspaceDir(workspaceId)).journal,
    `${JSON.stringify(entry)}\n`,
    { mode: 0o600 },
  );
}

export async function readJournal(workspaceId: string, limit: number) {
  const text = await readFile(workspaceFiles(workspaceDir(workspaceId)).journal, "utf8").catch(
    () => "",
  );
  // A line torn by a crash mid-append is skipped, not allowed to break every later read.
  const entries = text.split("\n").flatMap((line) => {
    try {
      return line ? [JSON.parse(line) as JournalEntryValue] : [];
    } catch {
      return [];
    }
  });
  return { entries: entries.slice(-limit), total: entries.length };
}
