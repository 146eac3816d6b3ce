import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CappedLog } from "../../src/vmm/console-log.js";
import { propertyRuns, propertySeed, random } from "../helpers/random.js";
import { tempDir } from "../helpers/temp.js";

describe("capped console log (property)", () => {
  it("keeps the beginning and the latest output of a guest that prints forever", () => {
    const seed = propertySeed(7);
    const next = random(seed);
    for (let run = 0; run < propertyRuns(20); run += 1) {
      const limits = {
        headBytes: 1 + Math.floor(next() * 3000),
        tailBytes: 1 + Math.floor(next() * 3000),
      };
      const path = join(tempDir("pyro-test-console-"), "console.log");
      const log = new CappedLog(path, limits);
      // Numbered lines, so any byte's position in the output is recognisable.
      const chunks: Buffer[] = [];
      const total = Math.floor(next() * 60_000);
      let written = 0;
      for (let line = 0; written < total; line += 1) {
        const chunk = Buffer.from(`line ${line} ${"x".repeat(Math.floor(next() * 200))}\n`);
        log.write(chunk);
        chunks.push(chunk);
        written += chunk.length;
      }
      log.close();
      const output = Buffer.concat(chunks);
      const file = readFileSync(path);
      const context = `seed ${seed}, run ${run}, limits ${JSON.stringify(limits)}, ${output.length} bytes`;
      const head = Math.min(limits.headBytes, output.length);
      expect(file.subarray(0, head).equals(output.subarray(0, head)), context).toBe(true);
      const marker = /\n\[pyro: (\d+) bytes of output dropped here to bound the log\]\n/.exec(
        file.toString("latin1"),
      );
      if (!marker) {
        expect(file.equals(output), context).toBe(true);
        continue;
      }
      const kept = file.subarray(marker.index + marker[0].length);
      // Head + dropped + kept accounts for every byte, the kept part is the latest
      // output, at least tailBytes of it, and the file stays under head + 2 tails.
      expect(limits.headBytes + Number(marker[1]) + kept.length, context).toBe(output.length);
      expect(kept.equals(output.subarray(output.length - kept.length)), context).toBe(true);
      expect(kept.length, context).toBeGreaterThanOrEqual(limits.tailBytes);
      expect(file.length - marker[0].length, context).toBeLessThanOrEqual(
        limits.headBytes + 2 * limits.tailBytes,
      );
    }
  });
});
