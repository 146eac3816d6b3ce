import { execFileSync } from "node:child_process";
import { mkdtemp, mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import { diffTrees } from "../../src/workspace/diff.js";
import { planPatch } from "../../src/workspace/patch.js";
import { readTree, writeTree, type Tree, type TreeEntry } from "../../src/workspace/tree.js";
import { random } from "../helpers/random.js";

const file = (text: string, mode = 0o644): TreeEntry => ({
  type: "file",
  content: Buffer.from(text),
  mode,
});
const dir = (mode = 0o755): TreeEntry => ({ type: "directory", mode });
const link = (target: string): TreeEntry => ({ type: "symlink", target });

/** The text files of a tree: what a unified diff can carry. */
function textFiles(tree: Tree): Map<string, string> {
  const result = new Map<string, string>();
  for (const [path, entry] of tree) {
    if (entry.type === "file") result.set(path, entry.content.toString("utf8"));
  }
  return new Map([...result].sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Applies planPatch's changes to a tree's text files, as the workspace manager would. */
function applyWithPlanPatch(patch: string, before: Tree): Map<string, string> {
  const files = textFiles(before);
  for (const change of planPatch(patch, (path) => files.get(path))) {
    if (change.content === null) files.delete(change.path);
    else files.set(change.path, change.content);
  }
  return new Map([...files].sort(([a], [b]) => (a < b ? -1 : 1)));
}

// ---- random trees and edits ----

/** Lines that stress a diff: repeats, blanks, tabs, leading spaces, non-ASCII, a CR. */
const WORDS = [
  "alpha",
  "beta",
  "",
  "gamma",
  "  indented",
  "delta\tx",
  "alpha",
  "}",
  "ünï",
  "crlf\r",
];
/** Names that collide often and need care in headers: a space, a quote. */
const NAMES = ["a", "b", "c.txt", "x y", 'q"t', "d"];

function randomText(next: () => number): string {
  const count = Math.floor(next() * 12);
  const lines = Array.from({ length: count }, () => WORDS[Math.floor(next() * WORDS.length)]);
  const text = lines.join("\n");
  return count > 0 && next() < 0.8 ? `${text}\n` : text; // some without a final newline
}

function randomPath(next: () => number): string {
  const depth = 1 + Math.floor(next() * 3);
  return Array.from({ length: depth }, () => NAMES[Math.floor(next() * NAMES.length)]).join("/");
}

/** Adds a file at `path` unless an ancestor is already a file (a tree cannot hold that). */
function addFile(tree: Tree, path: string, text: string): void {
  const parts = path.split("/");
  for (let depth = 1; depth < parts.length; depth++) {
    const parent = parts.slice(0, depth).join("/");
    if (tree.has(parent) && tree.get(parent)?.type !== "directory") return;
  }
  if (tree.get(path)?.type === "directory") return;
  for (let depth = 1; depth < parts.length; depth++)
    tree.set(parts.slice(0, depth).join("/"), dir());
  tree.set(path, file(text));
}

function randomTree(next: () => number): Tree {
  const tree: Tree = new Map();
  for (let count = Math.floor(next() * 8); count > 0; count--) {
    addFile(tree, randomPath(next), randomText(next));
  }
  return tree;
}

function editText(text: string, next: () => number): string {
  const lines = text.split("\n");
  for (let edits = 1 + Math.floor(next() * 3); edits > 0; edits--) {
    const at = Math.floor(next() * (lines.length + 1));
    const pick = next();
    if (pick < 0.3) lines.splice(at, 1);
    else if (pick < 0.6) lines.splice(at, 0, WORDS[Math.floor(next() * WORDS.length)] as string);
    else if (at < lines.length) lines[at] = `${lines[at]}!`;
  }
  const edited = lines.join("\n");
  if (next() < 0.15) return edited.endsWith("\n") ? edited.slice(0, -1) : `${edited}\n`;
  return edited;
}

/** Adds, modifies, empties and deletes files; `typeChanges` also turns files into directories. */
function randomEdit(before: Tree, next: () => number, typeChanges: boolean): Tree {
  const after: Tree = new Map([...before].map(([p, e]) => [p, { ...e }] as [string, TreeEntry]));
  for (const [path, entry] of before) {
    if (entry.type !== "file") continue;
    const pick = next();
    if (pick < 0.15) after.delete(path);
    else if (pick < 0.5) after.set(path, file(editText(entry.content.toString(), next)));
    else if (pick < 0.55) after.set(path, file(""));
    else if (pick < 0.6 && typeChanges) {
      after.set(path, dir());
      after.set(`${path}/inner`, file("was a file\n"));
    }
  }
  for (let count = Math.floor(next() * 3); count > 0; count--) {
    addFile(after, randomPath(next), randomText(next));
  }
  return after;
}

// ---- tests ----

describe("diffTrees", () => {
  it("reports added, modified, deleted and type-changed entries sorted by path", () => {
    const baseline: Tree = new Map([
      ["keep.txt", file("same\n")],
      ["edit.txt", file("one\ntwo\n")],
      ["gone.txt", file("bye\n")],
      ["old-dir", dir()],
      ["kept-dir", dir()],
      ["swap", file("was a file\n")],
      ["link", link("edit.txt")],
    ]);
    const current: Tree = new Map([
      ["keep.txt", file("same\n")],
      ["edit.txt", file("one\nTWO\n")],
      ["kept-dir", dir(0o700)],
      ["new-dir", dir()],
      ["new.txt", file("hi")],
      ["swap", link("keep.txt")],
      ["link", link("keep.txt")],
    ]);
    const diff = diffTrees(baseline, current);
    expect(diff.entries.map((e) => [e.path, e.status, e.artifact_type])).toEqual([
      ["edit.txt", "modified", "file"],
      ["gone.txt", "deleted", "file"],
      ["link", "modified", "symlink"],
      ["new-dir", "added", "directory"],
      ["new.txt", "added", "file"],
      ["old-dir", "deleted", "directory"],
      ["swap", "type_changed", "symlink"],
    ]);
    expect(diff.summary).toEqual({
      total: 7,
      added: 2,
      modified: 2,
      deleted: 2,
      type_changed: 1,
    });
    expect(diff.changed).toBe(true);
    expect(diff.entries[0]?.text_patch).toContain("-two\n+TWO\n");
    expect(diff.entries[2]?.text_patch).toBeUndefined();
  });

  it("writes git-style sections: deletions first, modes, index lines, no-newline markers", () => {
    const baseline: Tree = new Map([
      ["a.txt", file("x\n")],
      ["z.txt", file("gone\n")],
    ]);
    const current: Tree = new Map([
      ["a.txt", file("x\ny")],
      ["run.sh", file("#!/bin/sh\n", 0o755)],
    ]);
    expect(diffTrees(baseline, current).patch).toBe(
      [
        "diff --git a/z.txt b/z.txt",
        "deleted file mode 100644",
        "index 286c5f5..0000000", // blob ids as `git hash-object` computes them
        "--- a/z.txt",
        "+++ /dev/null",
        "@@ -1,1 +0,0 @@",
        "-gone",
        "diff --git a/a.txt b/a.txt",
        "index 587be6b..1b32298 100644",
        "--- a/a.txt",
        "+++ b/a.txt",
        "@@ -1,1 +1,2 @@",
        " x",
        "+y",
        "\\ No newline at end of file",
        "diff --git a/run.sh b/run.sh",
        "new file mode 100755",
        "index 0000000..1a24852",
        "--- /dev/null",
        "+++ b/run.sh",
        "@@ -0,0 +1,1 @@",
        "+#!/bin/sh",
        "",
      ].join("\n"),
    );
  });

  it("marks binary files and gives them a `Binary files ... differ` line instead of hunks", () => {
    const diff = diffTrees(
      new Map([["img.png", file("\x89PNG\0old")]]),
      new Map([["img.png", file("\x89PNG\0new")]]),
    );
    expect(diff.entries).toEqual([
      { path: "img.png", status: "modified", artifact_type: "file", binary: true },
    ]);
    expect(diff.patch).toBe("Binary files a/img.png and b/img.png differ\n");
    expect(() => planPatch(diff.patch, () => "")).toThrow(/binary/);
  });

  it("reports an executable-bit change as modified with git's old/new mode lines", () => {
    const diff = diffTrees(
      new Map([["run.sh", file("x\n", 0o644)]]),
      new Map([["run.sh", file("x\n", 0o755)]]),
    );
    expect(diff.entries[0]?.status).toBe("modified");
    expect(diff.patch).toBe("diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n");
  });

  it("reports nothing for identical trees", () => {
    const tree: Tree = new Map([
      ["a", dir()],
      ["a/b", file("b\n")],
    ]);
    expect(diffTrees(tree, new Map(tree))).toEqual({
      changed: false,
      summary: { total: 0, added: 0, modified: 0, deleted: 0, type_changed: 0 },
      entries: [],
      patch: "",
    });
  });

  it("falls back to one replacement hunk for a change too large to diff line by line", () => {
    const lines = (tag: string) => Array.from({ length: 3000 }, (_, i) => `${tag}${i}`).join("\n");
    const before: Tree = new Map([["big.txt", file(`${lines("old")}\n`)]]);
    const after: Tree = new Map([["big.txt", file(lines("new"))]]);
    const patch = diffTrees(before, after).patch;
    expect(patch).toContain("@@ -1,3000 +1,3000 @@");
    expect(applyWithPlanPatch(patch, before)).toEqual(textFiles(after));
  });

  it("property: applying diffTrees(a, b).patch to a with planPatch yields b's text files", () => {
    const next = random(2024);
    const seen = { applied: 0, noNewline: 0, quoted: 0, typeChanged: 0 };
    for (let run = 0; run < 300; run++) {
      const before = randomTree(next);
      const after = randomEdit(before, next, true);
      const diff = diffTrees(before, after);
      expect(diff.changed).toBe(diff.entries.length > 0);
      if (diff.patch === "") {
        expect(textFiles(before)).toEqual(textFiles(after)); // planPatch refuses an empty patch
        continue;
      }
      expect(applyWithPlanPatch(diff.patch, before), diff.patch).toEqual(textFiles(after));
      seen.applied += 1;
      if (diff.patch.includes("\\ No newline")) seen.noNewline += 1;
      if (diff.patch.includes('"a/')) seen.quoted += 1;
      if (diff.summary.type_changed > 0) seen.typeChanged += 1;
    }
    // The generator must reach the awkward cases, or this property proves little.
    expect(seen.applied).toBeGreaterThan(250);
    for (const count of Object.values(seen)) expect(count).toBeGreaterThan(10);
  });
});

describe("patch -p1 compatibility", () => {
  let scratch: string;
  beforeEach(async () => {
    scratch = await mkdtemp(join(tmpdir(), "pyro-diff-"));
  });
  afterEach(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it("GNU patch applies diffTrees(a, b).patch to a materialized a and yields b", async () => {
    expect(() => execFileSync("patch", ["--version"]), "GNU patch must be installed").not.toThrow();
    const next = random(99);
    for (let run = 0; run < 12; run++) {
      const before = randomTree(next);
      before.set("empty-gone", file(""));
      const after = randomEdit(before, next, false);
      after.set("empty-new", file(""));
      after.delete("empty-gone");
      const root = join(scratch, `run${run}`);
      await mkdir(root);
      await writeTree(root, before);
      const patchFile = join(scratch, `run${run}.diff`);
      await writeFile(patchFile, diffTrees(before, after).patch);
      // --force: never guess that a patch is reversed; it must apply as written.
      execFileSync("patch", ["-p1", "--force", "--no-backup-if-mismatch", "-s", "-i", patchFile], {
        cwd: root,
        stdio: "pipe",
      });
      expect(textFiles(await readTree(root)), `run ${run}`).toEqual(textFiles(after));
    }
  });
});

describe("readTree and writeTree", () => {
  let scratch: string;
  beforeEach(async () => {
    scratch = await mkdtemp(join(tmpdir(), "pyro-tree-"));
  });
  afterEach(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it("round-trips files, modes, empty directories and symlinks without following them", async () => {
    const tree: Tree = new Map([
      ["bin", dir(0o755)],
      ["bin/run", file("#!/bin/sh\n", 0o755)],
      ["empty", dir(0o700)],
      ["escape", link("/etc")],
      ["notes.txt", file("hello\n", 0o600)],
    ]);
    await writeTree(scratch, tree);
    expect(await readTree(scratch)).toEqual(tree);
  });

  it("refuses a tree over its entry or byte limit with the origin's error code", async () => {
    await writeTree(
      scratch,
      new Map([
        ["a", file("12345")],
        ["b", file("67890")],
      ]),
    );
    await expect(readTree(scratch, { maxEntries: 1 })).rejects.toMatchObject({
      code: "guest_error",
      message: expect.stringContaining("more than 1 entries"),
    });
    await expect(readTree(scratch, { maxTotalBytes: 8, origin: "user" })).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("more than 8 bytes"),
    });
  });

  it("refuses special files", async () => {
    execFileSync("mkfifo", [join(scratch, "pipe")]);
    await symlink("pipe", join(scratch, "to-pipe"));
    const error = await readTree(scratch).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PyroError);
    expect((error as PyroError).message).toContain("is not a file, directory or symlink");
  });
});
