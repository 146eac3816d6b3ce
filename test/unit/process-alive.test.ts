import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { isProcessAlive, sleep } from "../../src/util/process.js";

describe("isProcessAlive", () => {
  it("counts a zombie nobody has reaped yet as gone (a slow init holds exited shims)", async () => {
    // The shell's background child exits at once; its parent then execs `sleep`, which
    // never reaps it, so it stays a zombie until the test kills that parent.
    const parent = spawn("sh", ["-c", "sleep 0 & echo $!; exec sleep 30"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    try {
      const [line] = (await once(parent.stdout!, "data")) as [Buffer];
      const zombie = Number(line.toString().trim());
      let signalled = false;
      for (let i = 0; i < 200 && !signalled; i += 1) {
        await sleep(10);
        signalled = !isProcessAlive(zombie);
      }
      expect(() => process.kill(zombie, 0)).not.toThrow(); // still in the process table
      expect(isProcessAlive(zombie)).toBe(false);
      expect(isProcessAlive(parent.pid!)).toBe(true);
    } finally {
      parent.kill("SIGKILL");
    }
  });

  it("a pid that does not exist is not alive", () => {
    expect(isProcessAlive(2 ** 22 + 1)).toBe(false);
  });
});
