import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { z } from "zod";
import { PyroError } from "../contract/errors.js";
import type { AccelerationMode } from "../contract/vm.js";
import { vmFiles, type ShimStatus } from "../shim/launch.js";
import { isErrno, readJsonIfExists, writeJsonAtomic } from "../util/fs.js";
import { withLock } from "../util/lock.js";
import { pyroHome } from "../util/paths.js";
import { isProcessAlive } from "../util/process.js";

const ID_PATTERN = /^(vm|ws)_[0-9a-f]{12}$/;

export async function readRecord<T>(dir: string): Promise<T | undefined> {
  return readJsonIfExists<T>(vmFiles(dir).record);
}

export async function writeRecord(dir: string, record: object): Promise<void> {
  await writeJsonAtomic(vmFiles(dir).record, record, 0o600, { createParent: false });
}

/** What the VM's processes say, as opposed to what its record says. */
export interface LiveState {
  shim: ShimStatus | undefined;
  shimAlive: boolean;
  vmmAlive: boolean;
}

export async function liveState(dir: string): Promise<LiveState> {
  const shim = await readJsonIfExists<ShimStatus>(vmFiles(dir).status);
  const running =
    shim !== undefined &&
    shim.state !== "exited" &&
    shim.state !== "failed" &&
    shim.state !== "paused";
  return {
    shim,
    shimAlive: running && ownsPid(shim.shim_pid, dir),
    vmmAlive: shim?.vmm_pid != null && ownsPid(shim.vmm_pid, dir),
  };
}

/** A live pid whose command line mentions this VM's directory (pids get reused). */
export function ownsPid(pid: number, dir: string): boolean {
  if (!isProcessAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir);
  } catch {
    return false;
  }
}

/** The record fields every kind of sandbox (one-shot VM, workspace) has. */
export interface SandboxRecord {
  environment: string;
  /** `paused`: saved to its directory by its shim, which has exited (workspaces only). */
  state: "created" | "started" | "stopped" | "failed" | "paused";
  vcpu_count: number;
  mem_mib: number;
  ttl_seconds: number;
  expires_at: string;
  acceleration: z.output<typeof AccelerationMode> | null;
  error: string | null;
  /** A VM's switch (`true` = egress). */
  network?: boolean;
  /** A workspace's policy and allowlist. */
  network_policy?: "off" | "egress" | "egress+published-ports";
  allowed_domains?: readonly string[];
}

/** What one kind of sandbox says and does differently; everything else is shared. */
export interface SandboxKind<R extends SandboxRecord> {
  /** How messages name it: `VM`, `workspace`. */
  noun: string;
  idKind: "vm" | "workspace";
  idOf(record: R): string;
  /** Ends `no <noun> with id "X"; ...`: where such ids went or how to find real ones. */
  missingHint: string;
  /** The error of a started sandbox whose VM ended without its shim saying why. */
  endedError: string;
  /**
   * Workspaces write the reconciled state back so every later reader agrees. A VM's record
   * keeps `started`, which is how the reaper tells a VM that died from one that never booted.
   */
  persistReconciled: boolean;
  /** What no longer holds once the VM has ended (counts of guest processes). */
  endedFields: Partial<R>;
  /** What the shim is told besides the record: what its TTL does, where /workspace is. */
  launch: { ttl_action: "delete" | "stop" | "pause"; workspace_root?: string };
  /** The fields a successful boot sets besides state, error and acceleration. */
  startedFields(record: R, nowIso: string): Partial<R>;
}

export function expiresAt(fromIso: string, ttlSeconds: number): string {
  return new Date(Date.parse(fromIso) + ttlSeconds * 1000).toISOString();
}

/**
 * The records of one kind of sandbox: lookup (not_found), locked read-modify-write,
 * the state lock, reconciliation with the shim, and the state refusals every operation
 * starts with. Holds no per-caller state, so one instance serves a whole process.
 */
export class SandboxStore<R extends SandboxRecord> {
  constructor(readonly kind: SandboxKind<R>) {}

  /** State directories live in `PYRO_HOME/vms` and `PYRO_HOME/workspaces`. */
  dir(id: string): string {
    return join(pyroHome(), `${this.kind.idKind}s`, id);
  }

  newId(): string {
    return `${this.prefix}_${randomBytes(6).toString("hex")}`;
  }

  /** The ids of every sandbox of this kind, by their directories. */
  async ids(): Promise<string[]> {
    const entries = await readdir(join(pyroHome(), `${this.kind.idKind}s`)).catch(() => []);
    return entries.filter((e) => ID_PATTERN.test(e) && e.startsWith(`${this.prefix}_`)).sort();
  }

  /** The record as stored, or not_found with the id. */
  async load(id: string): Promise<R> {
    // Ids come from callers (and models): check the shape before it touches a path.
    const wellFormed = ID_PATTERN.test(id) && id.startsWith(`${this.prefix}_`);
    const record = wellFormed ? await readRecord<R>(this.dir(id)) : undefined;
    if (record) return record;
    const hint = wellFormed ? this.kind.missingHint : `ids look like ${this.prefix}_0123456789ab`;
    throw new PyroError("not_found", `no ${this.kind.noun} with id "${id}"; ${hint}`, {
      details: { [`${this.kind.idKind}_id`]: id },
    });
  }

  /** Makes the directory, lets `prepare` fill it, then writes the first record. */
  async create(record: R, prepare: (dir: string) => Promise<void> = async () => {}): Promise<R> {
    const dir = this.dir(this.kind.idOf(record));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await prepare(dir);
    await writeRecord(dir, record);
    return record;
  }

  /** Read-modify-write of the record under its lock; returns what was written. */
  async update(id: string, change: (record: R) => R): Promise<R> {
    const dir = this.dir(id);
    return this.inDir(id, () =>
      withLock(
        join(dir, "record.lock"),
        async () => {
          const next = change(await this.load(id));
          await writeRecord(dir, next);
          return next;
        },
        { createParent: false },
      ),
    );
  }

  /** Serialises state-changing operations on one sandbox, across processes. */
  async withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    await this.load(id); // not_found before a lock file could create the directory
    return this.inDir(id, () =>
      withLock(join(this.dir(id), "state.lock"), fn, {
        timeoutMs: 10 * 60_000,
        createParent: false,
      }),
    );
  }

  /**
   * The record reconciled with reality: a sandbox recorded as started whose VM ended is
   * `paused` when its shim saved it (an idle TTL pause, or a pause whose caller went before
   * recording it), `stopped` when it ended cleanly (idle TTL) and `failed` otherwise.
   */
  async reconciled(id: string): Promise<R> {
    const record = await this.load(id);
    if (record.state !== "started") return record;
    const live = await liveState(this.dir(id));
    if (live.shimAlive) return record;
    const ended = (current: R) =>
      current.state === "started" ? this.ended(current, live.shim) : current;
    return this.kind.persistReconciled ? this.update(id, ended) : ended(record);
  }

  /** The reconciled record, or `conflict` unless it is (or is `not started`) started. */
  async requireState(id: string, wanted: "started" | "not started", fix: string): Promise<R> {
    const record = await this.reconciled(id);
    if ((record.state === "started") === (wanted === "started")) return record;
    const state = wanted === "started" ? `${record.state}, not started` : "already started";
    throw new PyroError("conflict", `${this.kind.noun} ${id} is ${state}; ${fix}`);
  }

  /** The record of a sandbox whose VM was powered off cleanly. */
  stopped(record: R): R {
    return { ...record, ...this.kind.endedFields, state: "stopped" };
  }

  /** A VM that idled out (TTL) ended cleanly; any other end unasked for is a failure. */
  private ended(record: R, shim: ShimStatus | undefined): R {
    // Its guest processes live on in the saved memory: nothing has ended for them.
    if (shim?.state === "paused") return { ...record, state: "paused", error: null };
    if (shim?.state === "exited" && shim.stop_reason === "ttl") return this.stopped(record);
    const error = shim?.error ?? this.kind.endedError;
    return { ...record, ...this.kind.endedFields, state: "failed", error };
  }

  private get prefix(): string {
    return this.kind.idKind === "vm" ? "vm" : "ws";
  }

  /** A sandbox deleted while we worked on it reads as not_found, not a raw ENOENT. */
  private async inDir<T>(id: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (!isErrno(error, "ENOENT") || (await readRecord(this.dir(id)))) throw error;
      throw new PyroError("not_found", `${this.kind.noun} ${id} was deleted while this ran`, {
        details: { [`${this.kind.idKind}_id`]: id },
      });
    }
  }
}
