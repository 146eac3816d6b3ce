import { appendFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { z } from "zod";
import { PyroError } from "../contract/errors.js";
import type {
  JournalEntry,
  WorkspaceRecord as WorkspaceRecordSchema,
} from "../contract/workspace.js";
import { isErrno } from "../util/fs.js";
import { withLock } from "../util/lock.js";
import { checkId, liveState, readRecord, sandboxRoot, writeRecord } from "./records.js";

export type WorkspaceRecord = z.output<typeof WorkspaceRecordSchema>;
export type JournalEntryValue = z.output<typeof JournalEntry>;

/** Files of a workspace beyond the ones every sandbox has (see shim/launch.ts vmFiles). */
export function workspaceFiles(dir: string) {
  return {
    baseline: join(dir, "baseline.tar"),
    snapshots: join(dir, "snapshots"),
    snapshot: (name: string) => join(dir, "snapshots", `${name}.tar`),
    journal: join(dir, "journal.jsonl"),
    /** Serialises state changes (start, stop, reset, writes); held for their duration. */
    stateLock: join(dir, "state.lock"),
    /** Serialises read-modify-write of record.json; held for milliseconds. */
    recordLock: join(dir, "record.lock"),
  };
}

export function workspaceDir(workspaceId: string): string {
  return join(sandboxRoot("workspaces"), workspaceId);
}

/** The record as stored, or not_found with the id. */
export async function loadWorkspace(workspaceId: string): Promise<WorkspaceRecord> {
  checkId(workspaceId, "workspace");
  const record = await readRecord<WorkspaceRecord>(workspaceDir(workspaceId));
  if (!record) {
    throw new PyroError(
      "not_found",
      `no workspace with id "${workspaceId}"; list them with workspace_list`,
      {
        details: { workspace_id: workspaceId },
      },
    );
  }
  return record;
}

/**
 * The record reconciled with reality: a workspace recorded as started whose VM ended is
 * `stopped` when it ended cleanly (idle TTL, stop) and `failed` otherwise. The
 * correction is written back so every later reader agrees.
 */
export async function reconciledWorkspace(workspaceId: string): Promise<WorkspaceRecord> {
  const record = await loadWorkspace(workspaceId);
  if (record.state !== "started") return record;
  const live = await liveState(workspaceDir(workspaceId));
  if (live.shimAlive) return record;
  const clean = live.shim?.state === "exited" && live.shim.stop_reason === "ttl";
  return updateWorkspaceRecord(workspaceId, (current) =>
    current.state !== "started"
      ? current
      : clean
        ? { ...current, state: "stopped" }
        : {
            ...current,
            state: "failed",
            error:
              live.shim?.error ??
              "the workspace's VM ended unexpectedly; start it again with workspace_start",
          },
  );
}

/** Read-modify-write of the record under its lock; returns what was written. */
export async function updateWorkspaceRecord(
  workspaceId: string,
  change: (record: WorkspaceRecord) => WorkspaceRecord,
): Promise<WorkspaceRecord> {
  const dir = workspaceDir(workspaceId);
  return inWorkspaceDir(workspaceId, () =>
    withLock(
      workspaceFiles(dir).recordLock,
      async () => {
        const next = change(await loadWorkspace(workspaceId));
        await writeRecord(dir, next);
        return next;
      },
      { createParent: false },
    ),
  );
}

/** Serialises state-changing operations on one workspace, across processes. */
export async function withWorkspaceLock<T>(workspaceId: string, fn: () => Promise<T>): Promise<T> {
  await loadWorkspace(workspaceId);
  return inWorkspaceDir(workspaceId, () =>
    withLock(workspaceFiles(workspaceDir(workspaceId)).stateLock, fn, {
      timeoutMs: 10 * 60_000,
      createParent: false,
    }),
  );
}

/** A workspace deleted while we worked on it reads as not_found, not a raw ENOENT. */
async function inWorkspaceDir<T>(workspaceId: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (!isErrno(error, "ENOENT") || (await readRecord(workspaceDir(workspaceId)))) throw error;
    throw new PyroError("not_found", `workspace ${workspaceId} was deleted while this ran`, {
      details: { workspace_id: workspaceId },
    });
  }
}

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
