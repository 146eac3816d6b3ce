import { link, mkdir, open, readFile, rename, rm } from "node:fs/promises";
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

/**
 * Removes a dead holder's lock without racing another waiter: the lock is renamed away
 * (only one rename can win), and if what was taken turns out to be a live process's fresh
 * lock it is linked back, which fails harmlessly if a third process got there first.
 */
async function takeOverStaleLock(path: string, deadHolder: number): Promise<void> {
  const aside = `${path}.stale-${process.pid}-${Date.now()}`;
  try {
    await rename(path, aside);
  } catch {
    return; // another waiter took it over first
  }
  const taken = Number.parseInt(await readFile(aside, "utf8").catch(() => ""), 10);
  if (taken !== deadHolder) await link(aside, path).catch(() => {});
  await rm(aside, { force: true });
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
