import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { z } from "zod";
import { PyroError } from "../contract/errors.js";
import type { AccelerationMode } from "../contract/vm.js";
import type { ShimStatus } from "../shim/launch.js";
import { isErrno } from "../util/fs.js";
import { withLock } from "../util/lock.js";
import { checkId, liveState, readRecord, sandboxRoot, writeRecord } from "./records.js";

/** The record fields every kind of sandbox (one-shot VM, workspace) has. */
export interface SandboxRecord {
  environment: string;
  state: "created" | "started" | "stopped" | "failed";
  vcpu_count: number;
  mem_mib: number;
  ttl_seconds: number;
  expires_at: string;
  acceleration: z.output<typeof AccelerationMode> | null;
  error: string | null;
}

/** What one kind of sandbox says and does differently; everything else is shared. */
export interface SandboxKind<R extends SandboxRecord> {
  /** How messages name it: `VM`, `workspace`. */
  noun: string;
  idKind: "vm" | "workspace";
  idOf(record: R): string;
  root: "vms" | "workspaces";
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
  /** The fields a successful boot sets besides state, error and acceleration. */
  startedFields(record: R, nowIso: string): Partial<R>;
}

export function newId(prefix: "vm" | "ws"): string {
  return `${prefix}_${randomBytes(6).toString("hex")}`;
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

  dir(id: string): string {
    return join(sandboxRoot(this.kind.root), id);
  }

  /** The record as stored, or not_found with the id. */
  async load(id: string): Promise<R> {
    checkId(id, this.kind.idKind);
    const record = await readRecord<R>(this.dir(id));
    if (!record) {
      throw new PyroError(
        "not_found",
        `no ${this.kind.noun} with id "${id}"; ${this.kind.missingHint}`,
        {
          details: { [`${this.kind.idKind}_id`]: id },
        },
      );
    }
    return record;
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
   * `stopped` when it ended cleanly (idle TTL) and `failed` otherwise.
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

  /** Throws `conflict` unless the sandbox is started; `fix` says how to get there. */
  requireStarted(record: R, fix: string): R {
    if (record.state !== "started") {
      throw new PyroError(
        "conflict",
        `${this.kind.noun} ${this.kind.idOf(record)} is ${record.state}, not started; ${fix}`,
      );
    }
    return record;
  }

  /** Throws `conflict` when the sandbox is already started; `hint` says what to do instead. */
  refuseStarted(record: R, hint: string): R {
    if (record.state === "started") {
      throw new PyroError(
        "conflict",
        `${this.kind.noun} ${this.kind.idOf(record)} is already started; ${hint}`,
      );
    }
    return record;
  }

  /** The record of a sandbox whose VM was powered off cleanly. */
  stopped(record: R): R {
    return { ...record, ...this.kind.endedFields, state: "stopped" };
  }

  /** A VM that idled out (TTL) ended cleanly; any other end unasked for is a failure. */
  private ended(record: R, shim: ShimStatus | undefined): R {
    if (shim?.state === "exited" && shim.stop_reason === "ttl") return this.stopped(record);
    const error = shim?.error ?? this.kind.endedError;
    return { ...record, ...this.kind.endedFields, state: "failed", error };
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
