import { posix } from "node:path";
import { describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import {
  guestPath,
  normalizeWorkspacePath,
  symlinkTargetInWorkspace,
} from "../../src/workspace/paths.js";
import { random } from "../helpers/random.js";

function rejection(input: string, field?: string): PyroError {
  try {
    normalizeWorkspacePath(input, field);
  } catch (error) {
    expect(error).toBeInstanceOf(PyroError);
    return error as PyroError;
  }
  throw new Error(`${JSON.stringify(input)} was accepted`);
}

describe("normalizeWorkspacePath", () => {
  it.each([
    ["", ""],
    [".", ""],
    ["/workspace", ""],
    ["/workspace/", ""],
    ["a//b/./c", "a/b/c"],
    ["/workspace/a/../b", "b"],
    ["//workspace//src/", "src"],
    ["src/../README.md", "README.md"],
    ["./x y/ünï.txt", "x y/ünï.txt"],
  ])("normalizes %j to %j", (input, expected) => {
    expect(normalizeWorkspacePath(input)).toBe(expected);
  });

  it("refuses absolute paths outside /workspace and says what to give instead", () => {
    for (const input of ["/etc/passwd", "/workspacefoo", "/", "/tmp/workspace"]) {
      const error = rejection(input);
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toContain("is outside /workspace");
      expect(error.message).toContain("give a path relative to /workspace");
    }
    expect(rejection("/etc/passwd").message).toMatch(/^path "\/etc\/passwd" is outside/);
  });

  it("refuses `..` that climbs above /workspace, even if it comes back", () => {
    for (const input of ["..", "../x", "a/../../x", "/workspace/..", "a/../../workspace/b"]) {
      const error = rejection(input, "dest");
      expect(error.message).toMatch(/^dest ".*" escapes \/workspace through "\.\."/);
      expect(error.details).toMatchObject({ field: "dest", value: input });
    }
  });

  it("refuses NUL bytes, over-long paths and over-long names", () => {
    expect(rejection("a\0b").message).toContain("NUL byte");
    expect(rejection("a/".repeat(2049)).message).toContain("limited to 4096 bytes");
    expect(rejection("x".repeat(256)).message).toContain("longer than 255 bytes");
    expect(normalizeWorkspacePath("x".repeat(255))).toHaveLength(255);
  });

  it("agrees with posix.resolve on every random path it accepts, and refuses only escapes", () => {
    const pieces = ["a", "b", "..", ".", "", "workspace", "c d"];
    const next = random(42);
    for (let run = 0; run < 2000; run++) {
      const parts = Array.from({ length: 1 + Math.floor(next() * 6) }, () => {
        return pieces[Math.floor(next() * pieces.length)] as string;
      });
      const absolute = next() < 0.3;
      // A relative input must not start with "/": that is another test's absolute path.
      const input = (absolute ? "/workspace/" : "./") + parts.join("/");
      const climbs = parts.some((_, i) => {
        const prefix = posix.resolve("/workspace", ...parts.slice(0, i + 1));
        return prefix !== "/workspace" && !prefix.startsWith("/workspace/");
      });
      if (climbs) {
        expect(rejection(input).code, input).toBe("invalid_argument");
        continue;
      }
      const normalized = normalizeWorkspacePath(input);
      expect(guestPath(normalized), input).toBe(posix.resolve("/workspace", input));
      expect(normalizeWorkspacePath(guestPath(normalized))).toBe(normalized);
      expect(normalized.split("/")).not.toContain("..");
    }
  });
});

describe("guestPath", () => {
  it("maps the root and relative paths to absolute guest paths", () => {
    expect(guestPath("")).toBe("/workspace");
    expect(guestPath("src/a.py")).toBe("/workspace/src/a.py");
  });
});

describe("symlinkTargetInWorkspace", () => {
  it("resolves relative and absolute targets and refuses those that leave /workspace", () => {
    expect(symlinkTargetInWorkspace("src/link", "../lib/x")).toBe("lib/x");
    expect(symlinkTargetInWorkspace("link", "/workspace/data")).toBe("data");
    expect(symlinkTargetInWorkspace("link", ".")).toBe("");
    expect(symlinkTargetInWorkspace("link", "/etc/passwd")).toBeUndefined();
    expect(symlinkTargetInWorkspace("src/link", "../../etc")).toBeUndefined();
  });
});
