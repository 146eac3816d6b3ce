import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../contract/errors.js";
import { NAME_PATTERN } from "../contract/workspace.js";
import { ServiceRecord, type ServiceRecordValue } from "../contract/services.js";
import { isErrno, readJsonIfExists, writeJsonAtomic } from "../util/fs.js";
import { isProcessAlive } from "../util/process.js";
import type { AgentService } from "./service-agent.js";
import { updateWorkspaceRecord, workspaceDir } from "./workspace-store.js";

/**
 * Host records of a workspace's services: `services/<name>.json` in the workspace's
 * directory, one contract service record each. The guest's own table (32 entries) is
 * the truth about processes; these keep what the host knows across CLI invocations
 * (command, readiness, why pyro stopped it) and outlive the VM.
 */

export function servicesDir(workspaceId: string): string {
  return join(workspaceDir(workspaceId), "services");
}

function recordPath(workspaceId: string, name: string): string {
  return join(servicesDir(workspaceId), `${name}.json`);
}

export async function readServiceRecord(
  workspaceId: string,
  name: string,
): Promise<ServiceRecordValue | undefined> {
  const raw = await readJsonIfExists<unknown>(recordPath(workspaceId, name));
  const parsed = ServiceRecord.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}

/** The record, or `not_found` naming the services that do exist. */
export async function loadServiceRecord(
  workspaceId: string,
  name: string,
): Promise<ServiceRecordValue> {
  const record = await readServiceRecord(workspaceId, name);
  if (record) return record;
  const known = (await listServiceRecords(workspaceId)).map((r) => r.service_name);
  throw new PyroError(
    "not_found",
    `workspace ${workspaceId} has no service "${name}"; ${known.length ? `its services: ${known.join(", ")}` : "start one with service_start"}`,
    { details: { workspace_id: workspaceId, service_name: name, services: known } },
  );
}

export async function writeServiceRecord(record: ServiceRecordValue): Promise<void> {
  const dir = servicesDir(record.workspace_id);
  // The workspace directory itself must exist: a record never brings back a deleted one.
  await mkdir(dir, { mode: 0o700 }).catch((error: unknown) => {
    if (!isErrno(error, "EEXIST")) throw error;
  });
  await writeJsonAtomic(recordPath(record.workspace_id, record.service_name), record, 0o600, {
    createParent: false,
  });
}

/**
 * `starting` means a process is waiting for the service's readiness. That process leaves
 * `<name>.starting` (its pid and the latest time it can still be waiting) next to the
 * record, so others can tell a start in progress from one whose CLI was killed.
 */
function waiterPath(workspaceId: string, name: string): string {
  return join(servicesDir(workspaceId), `${name}.starting`);
}

interface Waiter {
  /** The host process that waits. */
  pid: number;
  deadline_ms: number;
  /** The guest pid of the service it waits for: a later start of the name has its own. */
  service_pid: number | null;
}

/** Time past the readiness timeout a waiter may need: the last check, a stop, the log tail. */
const WAITER_SLACK_MS = 60_000;

export async function markWaiting(record: ServiceRecordValue, timeoutMs: number): Promise<void> {
  const waiter: Waiter = {
    pid: process.pid,
    deadline_ms: Date.now() + timeoutMs + WAITER_SLACK_MS,
    service_pid: record.pid,
  };
  await mkdir(servicesDir(record.workspace_id), { mode: 0o700 }).catch((error: unknown) => {
    if (!isErrno(error, "EEXIST")) throw error;
  });
  await writeJsonAtomic(waiterPath(record.workspace_id, record.service_name), waiter, 0o600, {
    createParent: false,
  });
}

async function readWaiter(record: ServiceRecordValue): Promise<Waiter | undefined> {
  const raw = await readJsonIfExists<Partial<Waiter>>(
    waiterPath(record.workspace_id, record.service_name),
  ).catch(() => undefined);
  const valid =
    typeof raw?.pid === "number" &&
    typeof raw.deadline_ms === "number" &&
    raw.service_pid === record.pid;
  return valid ? (raw as Waiter) : undefined;
}

/**
 * Removed only after the record left `starting`, so a missing waiter means no one waits;
 * and only the waiter of this start, not that of a later start of the same name.
 */
export async function clearWaiting(record: ServiceRecordValue): Promise<void> {
  if (await readWaiter(record))
    await rm(waiterPath(record.workspace_id, record.service_name), { force: true });
}

/** A `starting` record that no process waits for any more (its CLI was killed). */
export async function isAbandonedStart(record: ServiceRecordValue): Promise<boolean> {
  if (record.state !== "starting") return false;
  const waiter = await readWaiter(record);
  if (waiter) return !isProcessAlive(waiter.pid) || Date.now() > waiter.deadline_ms;
  // No waiter: either it was killed before writing one, or it just finished and removed
  // it after writing the record; the record on disk now says which.
  const now = await readServiceRecord(record.workspace_id, record.service_name);
  return now?.state === "starting" && now.pid === record.pid;
}

export async function listServiceRecords(workspaceId: string): Promise<ServiceRecordValue[]> {
  const names = await readdir(servicesDir(workspaceId)).catch(() => [] as string[]);
  const records: ServiceRecordValue[] = [];
  for (const file of names.sort()) {
    const name = file.replace(/\.json$/, "");
    if (!file.endsWith(".json") || !NAME_PATTERN.test(name)) continue;
    const record = await readServiceRecord(workspaceId, name);
    if (record) records.push(record);
  }
  return records;
}

export async function clearServiceRecords(workspaceId: string): Promise<void> {
  await rm(servicesDir(workspaceId), { recursive: true, force: true });
}

export const isLive = (record: ServiceRecordValue) =>
  record.state === "running" || record.state === "starting";

/** The workspace record's counters, recomputed from the service records (self-healing). */
export async function refreshServiceCounts(workspaceId: string): Promise<void> {
  const records = await listServiceRecords(workspaceId);
  await updateWorkspaceRecord(workspaceId, (r) => ({
    ...r,
    service_count: records.length,
    running_service_count: records.filter(isLive).length,
  }));
}

const isoOrNull = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * A host record brought in line with the guest's table. A live record whose process the
 * guest no longer has (the VM was stopped, reset or restarted since) was ended with the
 * VM; one the guest reports exited ended by itself, with its exit status.
 */
export function reconcileRecord(
  record: ServiceRecordValue,
  guest: AgentService | undefined,
  vmEndedReason: string,
): ServiceRecordValue {
  if (!isLive(record)) return record;
  const same = guest !== undefined && guest.pid === record.pid;
  if (!same) {
    return {
      ...record,
      state: "stopped",
      stop_reason: record.stop_reason ?? vmEndedReason,
      ended_at: record.ended_at ?? new Date().toISOString(),
    };
  }
  if (guest.state === "running") return record;
  return {
    ...record,
    state: "exited",
    exit_code: guest.exit_code,
    signal: guest.signal,
    ended_at: isoOrNull(guest.ended_at_ms) ?? new Date().toISOString(),
  };
}
