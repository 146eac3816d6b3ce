import { mkdir, open, readFile, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { isErrno } from "./fs.js";
import { isProcessAlive, sleep } from "./process.js";

export interface LockOptions {
  /** Give up after this long. @default 30 minutes (an environment build holds it that long) */
  timeoutMs?: number;
  /** Called once when the lock is held by someone else and we start waiting. */
  onWait?: (holderPid: number) => void;
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

async function acquireLock(path: string, options: LockOptions): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
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
      await rm(path, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${path}`);
    if (!warned && holder > 0) options.onWait?.(holder);
    warned = true;
    await sleep(100);
  }
}
