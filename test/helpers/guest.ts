import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { sleep } from "../../src/util/process.js";
import { tempDir } from "./temp.js";

/**
 * Points PYRO_HOME at a fresh temp dir for this test file, so leftovers can be counted
 * exactly. The artifact cache stays shared: building a kernel per test file is not a test.
 */
export function isolatedHome(): string {
  const home = tempDir("pyro-home-");
  process.env.PYRO_HOME = home;
  return home;
}

/** PIDs of processes whose command line mentions `needle` (VMMs and shims of a home). */
export function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (cmdline.includes(needle)) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

export function vmDirs(home: string): string[] {
  try {
    return readdirSync(join(home, "vms"));
  } catch {
    return [];
  }
}

/**
 * Waits until `check` holds (teardown is asynchronous after a client dies); the generous
 * bound only limits how long a failure waits.
 */
export async function eventually(
  check: () => boolean,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await sleep(intervalMs);
  }
  return check();
}

/** The process has exited (a zombie awaiting its parent's reap counts as exited). */
export function processGone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8") === "";
  } catch {
    return true;
  }
}
