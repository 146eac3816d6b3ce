import { link, mkdir, open, readFile, rm, stat } from "node:fs/promises";
import { PyroError } from "../contract/errors.js";
import { dirname } from "node:path";
import { isErrno } from "./fs.js";
import { isProcessAlive, sleep } from "./process.js";

export interface LockOptions {
  /** Give up after this long. @default 30 minutes (an environment build holds it that long) */
  timeoutMs?: number;
  /** Called once when the lock is held by someone else and we start waiting. */
  onWait?: (holderPid: number) => void;
  /** Create the lock's directory if missing. Off inside a sandbox's own directory, so a
   * lock can never bring back a directory that was deleted. @default true */
  createParent?: boolean;
}

/**
 * An exclusive cross-process lock: a file created with O_EXCL holding the owner's pid.
 * A lock whose owner died is taken over, so a crashed build never wedges the cache.
 */
export async function withLock<T>(path: string, fn: () => Promise<T>, options: LockOptions = {}) {
  const release = await acquireLock(path, options);
  try {
    return await fn();
  } finally {
    await release();
  }
}

/** A takeover marker left by a process that died mid-takeover is cleared after this. */
const STALE_MARKER_MS = 10_000;

/**
 * Removes a dead holder's lock without racing other waiters. The lock is first hard-linked
 * to a marker named after the dead pid: only one waiter can create it, and while it exists
 * nobody else takes over that holder, so the winner knows `path` is still the dead
 * holder's file when it unlinks it. A waiter that links a live holder's newer lock sees
 * that pid in the marker and backs off; renaming the lock away instead (the old way) could
 * move a live lock aside between another waiter's check and its link back.
 */
async function takeOverStaleLock(path: string, deadHolder: number): Promise<void> {
  const marker = `${path}.takeover-${deadHolder}`;
  try {
    await link(path, marker);
  } catch (error) {
    if (isErrno(error, "EEXIST")) await clearAbandonedMarker(marker);
    return; // someone else is taking it over, or the lock is already gone
  }
  try {
    const taken = Number.parseInt(await readFile(marker, "utf8").catch(() => ""), 10);
    if (taken === deadHolder) await rm(path, { force: true });
  } finally {
    await rm(marker, { force: true });
  }
}

/** ctime, not mtime: the marker shares the old lock's inode, and link() sets its ctime. */
async function clearAbandonedMarker(marker: string): Promise<void> {
  const info = await stat(marker).catch(() => undefined);
  if (info && Date.now() - info.ctimeMs > STALE_MARKER_MS) await rm(marker, { force: true });
}

async function acquireLock(path: string, options: LockOptions): Promise<() => Promise<void>> {
  if (options.createParent !== false) await mkdir(dirname(path), { recursive: true });
  const deadline = Date.now() + (options.timeoutMs ?? 30 * 60_000);
  let warned = false;
  for (;;) {
    try {
      const handle = await open(path, "wx", 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if (!isErrno(error, "EEXIST")) throw error;
    }
    const holder = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
    if (Number.isInteger(holder) && holder > 0 && !isProcessAlive(holder)) {
      await takeOverStaleLock(path, holder);
      continue;
    }
    if (Date.now() > deadline) {
      throw new PyroError(
        "conflict",
        `${path} is held by process ${holder}; retry when it has finished`,
        {
          details: { lock: path, holder_pid: holder },
        },
      );
    }
    if (!warned && holder > 0) options.onWait?.(holder);
    warned = true;
    await sleep(100);
  }
}
