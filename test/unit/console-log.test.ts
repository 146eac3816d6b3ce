import { readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CappedLog, readFileTail } from "../../src/vmm/console-log.js";
import { tempDir } from "../helpers/temp.js";

describe("capped console log", () => {
  it("bounds the file however much is written (10 MiB in, at most ~3 KiB out)", () => {
    const path = join(tempDir("pyro-test-console-"), "console.log");
    const log = new CappedLog(path, { headBytes: 1024, tailBytes: 1024 });
    const chunk = Buffer.alloc(64 * 1024, "y");
    for (let i = 0; i < 160; i += 1) log.write(chunk);
    log.write(Buffer.from("the last words\n"));
    log.close();
    expect(statSync(path).size).toBeLessThan(3 * 1024 + 100);
    expect(readFileSync(path, "utf8").endsWith("the last words\n")).toBe(true);
  });

  it("reads only the end of a huge log", async () => {
    const path = join(tempDir("pyro-test-console-"), "console.log");
    writeFileSync(path, "");
    truncateSync(path, 4 * 1024 * 1024 * 1024); // sparse: 4 GiB without using the disk
    await appendFile(path, "kernel panic: the end\n");
    const before = process.memoryUsage().arrayBuffers;
    const tail = await readFileTail(path, 64);
    expect(tail.endsWith("kernel panic: the end\n")).toBe(true);
    expect(Buffer.byteLength(tail)).toBe(64);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
    expect(await readFileTail(join(tempDir("pyro-test-console-"), "missing.log"), 64)).toBe("");
  });
});
