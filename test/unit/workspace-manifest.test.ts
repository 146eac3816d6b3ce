import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import type { WireManifestLine } from "../../src/guest/files.js";
import { ManifestLineSchema } from "../../src/guest/ops/index.js";
import { copyArchive, extractArchive, packTree } from "../../src/workspace/archive.js";
import {
  changedPaths,
  checkGuestManifest,
  manifestOfTree,
  sha256Hex,
  type Manifest,
} from "../../src/workspace/manifest.js";
import { readTree, type Tree } from "../../src/workspace/tree.js";
import { entry, tar } from "../helpers/tar.js";

const LIMITS = { maxEntries: 100, maxTotalBytes: 1000 };
const HASH = sha256Hex(Buffer.from("x"));

const file = (path: string, extra: Partial<WireManifestLine> = {}): WireManifestLine => ({
  path,
  artifact_type: "file",
  size_bytes: 1,
  mode: 0o644,
  sha256: HASH,
  link_target: null,
  ...extra,
});
const dir = (path: string): WireManifestLine => ({
  path,
  artifact_type: "directory",
  size_bytes: 0,
  mode: 0o755,
  sha256: null,
  link_target: null,
});
const link = (path: string, target: string): WireManifestLine => ({
  path,
  artifact_type: "symlink",
  size_bytes: target.length,
  mode: 0o777,
  sha256: null,
  link_target: target,
});

function refusal(lines: WireManifestLine[], limits = LIMITS): string {
  try {
    checkGuestManifest(lines, limits);
  } catch (error) {
    expect(error).toBeInstanceOf(PyroError);
    expect((error as PyroError).code).toBe("guest_error");
    return (error as PyroError).message;
  }
  throw new Error("the manifest was accepted");
}

describe("a guest's manifest", () => {
  it("is accepted as a map of its entries when it is what an honest agent sends", () => {
    const manifest = checkGuestManifest(
      [dir("src"), file("src/a.py"), link("src/l", "../x"), file("top")],
      LIMITS,
    );
    expect([...manifest.keys()]).toEqual(["src", "src/a.py", "src/l", "top"]);
    expect(manifest.get("src/l")).toEqual({ type: "symlink", target: "../x" });
    expect(manifest.get("top")).toEqual({ type: "file", size: 1, mode: 0o644, sha256: HASH });
  });

  it.each([
    ["a .. component", [dir("a"), file("a/../../etc/passwd")], "names the path"],
    ["an absolute path", [file("/etc/passwd")], "names the path"],
    ["a . component", [file("./a")], "names the path"],
    ["an empty component", [dir("a"), file("a//b")], "names the path"],
    ["an empty path", [file("")], "names the path"],
    ["a NUL byte", [file("a\0b")], "names the path"],
    ["a name over 255 bytes", [file("n".repeat(256))], "names the path"],
    ["a path listed twice", [file("a"), file("a")], "listed twice"],
    ["an entry whose parent is missing", [file("a/b")], "parent is not listed"],
    ["an entry under a file", [file("a"), file("a/b")], "parent is not listed"],
    ["an entry under a symlink", [link("a", "/etc"), file("a/passwd")], "parent is not listed"],
    ["a file without a hash", [file("a", { sha256: null })], "hash"],
    ["a directory with a hash", [{ ...dir("d"), sha256: HASH }], "hash"],
    ["a symlink without a target", [{ ...link("l", "x"), link_target: null }], "link target"],
    ["a file with a link target", [file("a", { link_target: "x" })], "link target"],
  ])("refuses %s", (_name, lines, problem) => {
    expect(refusal(lines as WireManifestLine[])).toContain(problem);
  });

  it("refuses more entries or bytes than asked for", () => {
    const many = Array.from({ length: 101 }, (_, i) => file(`f${i}`));
    expect(refusal(many)).toContain("more than 100 entries");
    const big = [file("a", { size_bytes: 600 }), file("b", { size_bytes: 600 })];
    expect(refusal(big)).toContain("more than 1000 bytes");
  });

  it("lines with a bad hash, mode or type are refused by the op's schema", () => {
    const bad = [
      { ...file("a"), sha256: "z".repeat(64) },
      { ...file("a"), sha256: HASH.toUpperCase() },
      { ...file("a"), sha256: HASH.slice(1) },
      { ...file("a"), mode: 0o10000 },
      { ...file("a"), artifact_type: "fifo" },
      { ...file("a"), size_bytes: -1 },
      { ...file("a"), extra: true },
    ];
    for (const line of bad)
      expect(ManifestLineSchema.safeParse(line).success, JSON.stringify(line)).toBe(false);
    expect(ManifestLineSchema.safeParse(file("a")).success).toBe(true);
  });
});

describe("changed paths", () => {
  const before: Manifest = manifestOfTree(
    new Map([
      ["same", { type: "file", content: Buffer.from("1"), mode: 0o644 }],
      ["content", { type: "file", content: Buffer.from("1"), mode: 0o644 }],
      ["exec", { type: "file", content: Buffer.from("1"), mode: 0o644 }],
      ["readonly", { type: "file", content: Buffer.from("1"), mode: 0o644 }],
      ["d", { type: "directory", mode: 0o755 }],
      ["l", { type: "symlink", target: "a" }],
      ["gone", { type: "file", content: Buffer.from("1"), mode: 0o644 }],
      ["kind", { type: "file", content: Buffer.from("1"), mode: 0o644 }],
    ]) as Tree,
  );

  it("are the ones diffTrees reports: content, exec bit, type, link target, added, deleted", () => {
    const after = new Map(before);
    after.set("content", {
      type: "file",
      size: 1,
      mode: 0o644,
      sha256: sha256Hex(Buffer.from("2")),
    });
    after.set("exec", { type: "file", size: 1, mode: 0o755, sha256: sha256Hex(Buffer.from("1")) });
    // Not something a diff shows: other mode bits of a file, a directory's mode.
    after.set("readonly", {
      type: "file",
      size: 1,
      mode: 0o400,
      sha256: sha256Hex(Buffer.from("1")),
    });
    after.set("d", { type: "directory", mode: 0o700 });
    after.set("l", { type: "symlink", target: "b" });
    after.delete("gone");
    after.set("kind", { type: "directory", mode: 0o755 });
    after.set("new", { type: "symlink", target: "x" });
    expect(changedPaths(before, after)).toEqual(["content", "exec", "gone", "kind", "l", "new"]);
    expect(changedPaths(before, before)).toEqual([]);
  });
});

describe("copyArchive (snapshots)", () => {
  let scratch: string;
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "pyro-copy-archive-"));
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it("writes a normalised tar that unpacks to the same tree, owners 0", async () => {
    const tree: Tree = new Map([
      ["a.txt", { type: "file", content: Buffer.from("hello\n"), mode: 0o644 }],
      ["bin", { type: "directory", mode: 0o755 }],
      ["bin/run", { type: "file", content: Buffer.alloc(70_000, 1), mode: 0o755 }],
      ["link", { type: "symlink", target: "bin/run" }],
      [`deep/${"n".repeat(120)}`, { type: "file", content: Buffer.from("long"), mode: 0o644 }],
      ["deep", { type: "directory", mode: 0o755 }],
    ]);
    const dest = join(scratch, "copy.tar");
    const result = await copyArchive(Readable.from([packTree(tree)]), dest, LIMITS_BIG);
    expect(result.entries).toBe(tree.size);
    const out = join(scratch, "out");
    await mkdir(out);
    await extractArchive(dest, out, LIMITS_BIG);
    expect(await readTree(out)).toEqual(tree);
    expect(await readdir(scratch)).toEqual(["copy.tar", "out"]);
  });

  it.each([
    ["a .. entry", tar(entry({ name: "a" }, "x"), entry({ name: "../escape" }, "x"))],
    ["a hard link", tar(entry({ name: "a" }, "x"), entry({ name: "b", type: "1", linkname: "a" }))],
    ["a FIFO", tar(entry({ name: "p", type: "6" }))],
    [
      "an entry through a symlink",
      tar(entry({ name: "l", type: "2", linkname: "/etc" }), entry({ name: "l/x" }, "x")),
    ],
    [
      "a stream cut short",
      tar(entry({ name: "a", size: 2000 }, "x".repeat(2000))).subarray(0, 1100),
    ],
  ])("refuses %s and leaves no file, not even a partial one", async (_name, bytes) => {
    const dir = await mkdtemp(join(scratch, "refused-"));
    const source = new Readable({ read() {} });
    source.push(bytes);
    source.push(null);
    const error = await copyArchive(source, join(dir, "snap.tar"), LIMITS_BIG).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PyroError);
    expect((error as PyroError).code).toBe("guest_error");
    expect(await readdir(dir)).toEqual([]);
  });
});

const LIMITS_BIG = { maxEntries: 1000, maxTotalBytes: 1 << 20 };
