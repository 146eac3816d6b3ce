import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createMemoryFile, memoryFileBytes } from "../../src/vmm/memory.js";
import { tempDir } from "../helpers/temp.js";

describe("a VM's RAM file", () => {
  it("is created sparse at exactly the VM's memory, private to its owner", async () => {
    const path = join(tempDir("pyro-ram-"), "memory.ram");
    await createMemoryFile(path, 64);
    const stat = statSync(path);
    expect(stat.size).toBe(memoryFileBytes(64));
    expect(stat.size).toBe(64 * 1024 * 1024);
    expect(stat.blocks).toBe(0);
    expect(stat.mode & 0o777).toBe(0o600);
  });

  it("keeps an existing file (a paused VM's memory, a template copy) unless asked for a fresh one", async () => {
    const path = join(tempDir("pyro-ram-"), "memory.ram");
    writeFileSync(path, "saved pages");
    await createMemoryFile(path, 64);
    expect(readFileSync(path, "utf8")).toBe("saved pages");
    await createMemoryFile(path, 64, { fresh: true });
    expect(statSync(path).size).toBe(memoryFileBytes(64));
    expect(statSync(path).blocks).toBe(0);
  });
});
