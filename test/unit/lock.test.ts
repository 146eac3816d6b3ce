import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { withLock } from "../../src/util/lock.js";
import { sleep } from "../../src/util/process.js";

function deadPid(): number {
  return spawnSync("true").pid!;
}

describe("cross-process lock", () => {
  it("lets exactly one holder in at a time, even when all waiters find a dead holder's lock", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pyro-lock-"));
    const path = join(dir, "state.lock");
    writeFileSync(path, String(deadPid()));
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      Array.from({ length: 8 }, () =>
        withLock(path, async () => {
          inside += 1;
          maxInside = Math.max(maxInside, inside);
          await sleep(20);
          inside -= 1;
        }),
      ),
    );
    expect(maxInside).toBe(1);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("gives up with conflict, naming the holder, when a live process keeps it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pyro-lock-"));
    const path = join(dir, "state.lock");
    writeFileSync(path, String(process.ppid));
    await expect(withLock(path, async () => {}, { timeoutMs: 200 })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining(String(process.ppid)),
    });
  });
});
