import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";

// Registered when a test file first imports this module, so it runs after that file's
// own afterAll hooks (vitest runs after-hooks in reverse order).
const made: string[] = [];
afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * A fresh directory under the OS temp dir, removed when the test file that made it ends:
 * a suite run many times a day must not leave thousands of directories behind.
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
