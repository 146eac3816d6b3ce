import { describe, expect, it, vi } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import {
  MAX_PATCH_BYTES,
  patchedPaths,
  planPatch,
  summarizeChanges,
  type FileChange,
} from "../../src/workspace/patch.js";

/** A workspace as path → text, and the reader planPatch takes. */
function files(entries: Record<string, string>) {
  const map = new Map(Object.entries(entries));
  return { map, read: (path: string) => map.get(path) };
}

function applyChanges(map: Map<string, string>, changes: FileChange[]): Map<string, string> {
  const result = new Map(map);
  for (const change of changes) {
    if (change.content === null) result.delete(change.path);
    else result.set(change.path, change.content);
  }
  return result;
}

function rejection(patch: string, read: (path: string) => string | undefined): PyroError {
  try {
    planPatch(patch, read);
  } catch (error) {
    expect(error).toBeInstanceOf(PyroError);
    return error as PyroError;
  }
  throw new Error("the patch was accepted");
}

const GIT_PATCH = `diff --git a/src/app.py b/src/app.py
index 1111111..2222222 100644
--- a/src/app.py
+++ b/src/app.py
@@ -1,4 +1,4 @@
 import os
-print("old")
+print("new")
 x = 1
 y = 2
@@ -8,3 +8,4 @@ def f():
 a
 b
 c
+d
diff --git a/README.md b/README.md
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/README.md
@@ -0,0 +1,2 @@
+# Title
+no newline here
\\ No newline at end of file
diff --git a/old.txt b/old.txt
deleted file mode 100644
index 4444444..0000000
--- a/old.txt
+++ /dev/null
@@ -1,2 +0,0 @@
-gone
-too
diff --git a/empty.txt b/empty.txt
new file mode 100644
index 0000000..e69de29
`;

const APP = 'import os\nprint("old")\nx = 1\ny = 2\n\n\ndef f():\na\nb\nc\n';

describe("planPatch", () => {
  it("applies git output: many files and hunks, add, delete, empty file, missing final newline", () => {
    const { map, read } = files({ "src/app.py": APP, "old.txt": "gone\ntoo\n" });
    const changes = planPatch(GIT_PATCH, read);
    expect(changes.map(({ path, status }) => [path, status])).toEqual([
      ["old.txt", "deleted"],
      ["src/app.py", "modified"],
      ["README.md", "added"],
      ["empty.txt", "added"],
    ]);
    const after = applyChanges(map, changes);
    expect(after.get("src/app.py")).toBe(
      'import os\nprint("new")\nx = 1\ny = 2\n\n\ndef f():\na\nb\nc\nd\n',
    );
    expect(after.get("README.md")).toBe("# Title\nno newline here");
    expect(after.get("empty.txt")).toBe("");
    expect(after.has("old.txt")).toBe(false);
  });

  it("applies plain `diff -u` output with timestamps and unprefixed paths", () => {
    const patch = [
      "--- notes.txt\t2024-01-01 10:00:00.000000000 +0000",
      "+++ notes.txt\t2024-01-02 10:00:00.000000000 +0000",
      "@@ -1,2 +1,2 @@",
      " keep",
      "-drop",
      "+add",
      "",
    ].join("\n");
    const { read } = files({ "notes.txt": "keep\ndrop\n" });
    expect(planPatch(patch, read)).toEqual([
      { path: "notes.txt", status: "modified", content: "keep\nadd\n" },
    ]);
  });

  it("adds and removes the final newline as `\\ No newline at end of file` says", () => {
    const addNewline = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n";
    expect(planPatch(addNewline, files({ f: "x" }).read)[0]?.content).toBe("x\n");
    const dropNewline = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n+x\n\\ No newline at end of file\n";
    expect(planPatch(dropNewline, files({ f: "x\n" }).read)[0]?.content).toBe("x");
    const error = rejection(addNewline, files({ f: "x\n" }).read);
    expect(error.message).toContain("does not end with a newline");
  });

  it("finds a hunk whose context moved (an offset) but never fuzzes its content", () => {
    const patch = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n";
    expect(planPatch(patch, files({ f: "new\nlines\na\nb\n" }).read)[0]?.content).toBe(
      "new\nlines\na\nB\n",
    );
    expect(rejection(patch, files({ f: "a\nb \n" }).read).code).toBe("invalid_argument");
  });

  it("names the file, the hunk, the line and expected vs found when a hunk does not apply", () => {
    const { read } = files({ "src/app.py": APP.replace("c\n", "C\n") });
    const error = rejection(GIT_PATCH, read);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe(
      'the patch does not apply to "src/app.py": hunk #2 (@@ -8,3 +8,4 @@) expects line 10 to be "c", but found "C" (it has less context after its change than before, so it may only apply at the end of the file). Nothing was changed; read the file again and regenerate the patch.',
    );
    expect(error.details).toMatchObject({ path: "src/app.py", hunk: 2 });
  });

  it("patch that fails on the second file plans nothing (the caller writes nothing)", () => {
    const patch =
      "--- a/one\n+++ b/one\n@@ -1 +1 @@\n-1\n+one\n--- a/two\n+++ b/two\n@@ -1 +1 @@\n-2\n+two\n";
    const error = rejection(patch, files({ one: "1\n", two: "zwei\n" }).read);
    expect(error.message).toContain('"two": hunk #1 (@@ -1,1 +1,1 @@) expects line 1 to be "2"');
  });

  it("reports a hunk that runs past the end of the file", () => {
    const patch = "--- a/f\n+++ b/f\n@@ -2,2 +2,2 @@\n b\n-c\n+C\n";
    expect(rejection(patch, files({ f: "a\nb\n" }).read).message).toContain(
      'expects line 3 to be "c", but the file has only 2 lines',
    );
  });

  it("refuses a hunk that claims a line past the end of the file and changes nothing", () => {
    // Before the check, jsdiff walked back from line 10,000,000 and applied this at line 1.
    const patch = "--- a/f\n+++ b/f\n@@ -10000000,1 +10000000,1 @@\n-x\n+y\n";
    const error = rejection(patch, files({ f: "x\n" }).read);
    expect(error.message).toBe(
      'the patch does not apply to "f": hunk #1 (@@ -10000000,1 +10000000,1 @@) starts at line 10000000, but the file has only 1 lines. Nothing was changed; read the file again and regenerate the patch.',
    );
    expect(error.details).toMatchObject({ path: "f", hunk: 1 });
    // A later hunk is checked too, and inserting after the last line is still allowed.
    const second = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n+y\n@@ -3,0 +3,1 @@\n+z\n";
    expect(rejection(second, files({ f: "x\n" }).read).message).toContain(
      "hunk #2 (@@ -3,0 +3,1 @@) starts at line 3, but the file has only 1 lines",
    );
    const append = "--- a/f\n+++ b/f\n@@ -1,0 +2,1 @@\n+z\n";
    expect(planPatch(append, files({ f: "x\n" }).read)[0]?.content).toBe("x\nz\n");
  });

  it("refuses a hunk starting at line 999999999999 at once instead of searching up to it", () => {
    // The old search stepped one line at a time from there: hours of CPU, during which this
    // synchronous call holds the whole test run (a hang is how it fails).
    const patch = "--- a/f\n+++ b/f\n@@ -999999999999,1 +999999999999,1 @@\n-x\n+y\n";
    expect(rejection(patch, files({ f: "x\n" }).read).message).toContain(
      "starts at line 999999999999, but the file has only 1 lines",
    );
  });

  it("names the failing hunk among 12,000 small hunks without trying every prefix", () => {
    // Finding the failing hunk by applying every prefix in turn is quadratic: about a minute
    // here, and minutes for a 1 MiB patch.
    const count = 12_000;
    const text = Array.from({ length: count }, (_, i) => `l${i}\n`).join("");
    const hunks = Array.from({ length: count }, (_, i) => {
      const old = i === count - 1 ? "zz" : `l${i}`;
      return `@@ -${i + 1} +${i + 1} @@\n-${old}\n+m${i}\n`;
    });
    const patch = `--- a/f\n+++ b/f\n${hunks.join("")}`;
    const started = Date.now();
    expect(rejection(patch, files({ f: text }).read).message).toContain(
      `hunk #${count} (@@ -${count},1 +${count},1 @@) expects line ${count} to be "zz", but found "l${count - 1}"`,
    );
    // Generous: the fix takes well under a second here.
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 60_000);

  it("applies a hunk cut short by the start or end of the file only there, as GNU patch does", () => {
    // Less context before the change than after, at line 1: it was the file's start.
    const atStart = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-y\n+Y\n z\n";
    expect(rejection(atStart, files({ f: "x\ny\nz\n" }).read).message).toContain(
      "so it may only apply at the start of the file",
    );
    // Less context after than before: it was the file's end, even where line 1 matches.
    const atEnd = "--- a/f\n+++ b/f\n@@ -1,2 +1,3 @@\n a\n b\n+c\n";
    expect(planPatch(atEnd, files({ f: "a\nb\nx\na\nb\n" }).read)[0]?.content).toBe(
      "a\nb\nx\na\nb\nc\n",
    );
  });

  it("takes `\\ No newline at end of file` after a context line as true of the file", () => {
    const patch = "--- a/f\n+++ b/f\n@@ -1,2 +1,1 @@\n-x\n y\n\\ No newline at end of file\n";
    expect(rejection(patch, files({ f: "x\ny\nz\n" }).read).code).toBe("invalid_argument");
    expect(planPatch(patch, files({ f: "x\ny" }).read)[0]?.content).toBe("y");
  });

  it("refuses a git section whose header lines disagree or that git would not write", () => {
    const read = files({ a: "x\n" }).read;
    const cases: [string, RegExp][] = [
      ["diff --git a/a b/a\nindex 1111111..0000000\n", /in another that it is not/],
      [
        "diff --git a/a b/a\ndeleted file mode 100644\n--- a/a\n+++ b/a\n@@ -1 +0,0 @@\n-x\n",
        /in another/,
      ],
      ["diff --git a/a b/a\n--- a/b\n+++ b/b\n@@ -1 +1 @@\n-x\n+y\n", /--- line names "a\/b"/],
      ["diff --git a/a b/a\nstray\n--- a/a\n+++ b/a\n@@ -1 +1 @@\n-x\n+y\n", /"stray"/],
      ["diff --git a/a b/a\n", /no hunks and no mode lines/],
      ["diff --git a/a b/a\ndeleted file mode 100644\n@@ -1 +0,0 @@\n-x\n", /no ---\/\+\+\+/],
      ["--- a/a\n+++ /dev/null\n@@ -1 +5,0 @@\n-x\n", /\+0,0/],
      ['--- "a/t\\tb"\n+++ "b/t\\tb"\n@@ -1 +1 @@\n-x\n+y\n', /quoted name/],
      [
        "--- a/a\n+++ b/a\n@@ -1,2 +1,1 @@\n-x\n\\ No newline at end of file\n y\n",
        /does not follow/,
      ],
    ];
    for (const [patch, message] of cases) {
      expect(rejection(patch, read).message, patch).toMatch(message);
    }
  });

  it("refuses a hunk whose header counts a line its side does not have", () => {
    // jsdiff reads `+2` (one line) with no new lines as `+2,0`, a hunk that does nothing.
    const patch = "--- a/f\n+++ b/f\n@@ -1,0 +2 @@"; // ends at the header
    expect(rejection(patch, files({ f: "x\n" }).read).message).toContain(
      "counts 0 old and 1 new lines but has 0 and 0",
    );
  });

  it("reads an empty context line (a stripped space) at the end of a git section", () => {
    // Such a line used to end the section's own parse and throw a plain Error.
    const patch =
      "diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-x\n+y\n\ndiff --git a/g b/g\n--- a/g\n+++ b/g\n@@ -1 +1 @@\n-1\n+2\n";
    const changes = planPatch(patch, files({ f: "x\n\n", g: "1\n" }).read);
    expect(changes.map((c) => [c.path, c.content])).toEqual([
      ["f", "y\n\n"],
      ["g", "2\n"],
    ]);
  });

  it("refuses a patch whose hunks would need too much searching to place", () => {
    // Context that matches everywhere but at one line: each of 400,000 positions costs 151
    // comparisons, past the work budget, so it is refused rather than searched.
    const text = "a\n".repeat(400_000);
    const context = " a\n".repeat(150);
    const patch = `--- a/f\n+++ b/f\n@@ -1,301 +1,300 @@\n${context}-b\n${context}`;
    expect(rejection(patch, files({ f: text }).read).message).toContain(
      "needs too much searching to place its hunks",
    );
  });

  it("refuses to add an existing file or to modify or delete a missing one", () => {
    const add = "--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+x\n";
    expect(rejection(add, files({ x: "" }).read).message).toContain(
      'the patch adds "x", but it already exists',
    );
    const modify = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-x\n+y\n";
    expect(rejection(modify, files({}).read).message).toContain(
      'the patch modifies "x", which does not exist',
    );
    const remove = "--- a/x\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n";
    expect(rejection(remove, files({}).read).message).toContain("deletes");
    expect(rejection(remove, files({ x: "x\ny\n" }).read).message).toContain(
      "does not remove all of its lines",
    );
  });

  it("applies two sections for the same file in order", () => {
    const patch = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-1\n+2\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-2\n+3\n";
    expect(planPatch(patch, files({ f: "1\n" }).read)).toEqual([
      { path: "f", status: "modified", content: "3\n" },
    ]);
    const addThenDelete =
      "--- /dev/null\n+++ b/n\n@@ -0,0 +1 @@\n+n\n--- a/n\n+++ /dev/null\n@@ -1 +0,0 @@\n-n\n";
    expect(planPatch(addThenDelete, files({}).read)).toEqual([]);
  });

  it("refuses paths outside /workspace before reading anything", () => {
    const read = vi.fn(() => "x\n");
    for (const name of ["../../etc/passwd", "/etc/passwd"]) {
      const patch = `--- ${name}\n+++ ${name}\n@@ -1 +1 @@\n-x\n+y\n`;
      const error = rejection(patch, read);
      expect(error.message).toMatch(/patch file ".*" (escapes|is outside) \/workspace/);
    }
    expect(read).not.toHaveBeenCalled();
  });

  it("refuses renames, mode changes, symlinks and binary patches", () => {
    const read = files({ a: "x\n", b: "x\n" }).read;
    const cases: [string, RegExp][] = [
      ["diff --git a/a b/c\nsimilarity index 100%\nrename from a\nrename to c\n", /renamed/],
      ["diff --git a/a b/a\nold mode 100644\nnew mode 100755\n", /changes mode/],
      [
        "diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+t\n",
        /not a regular file/,
      ],
      [
        "diff --git a/a b/a\nindex 1..2 100644\nBinary files a/a and b/a differ\n",
        /binary file \("a"\)/,
      ],
      ["diff --git a/a b/a\nGIT binary patch\nliteral 0\nHcmV?d00001\n", /binary/],
      ["Binary files a/b and b/b differ\n", /binary/],
      ["--- a/a\n+++ b/c\n@@ -1 +1 @@\n-x\n+y\n", /renames are not supported/],
    ];
    for (const [patch, message] of cases) {
      expect(rejection(patch, read).message, patch).toMatch(message);
    }
  });

  it("refuses a patch over 1 MiB before parsing or reading anything", () => {
    const read = vi.fn(() => undefined);
    const error = rejection("+".repeat(MAX_PATCH_BYTES + 1), read);
    expect(error.message).toContain("at most 1048576 bytes (1 MiB)");
    expect(read).not.toHaveBeenCalled();
  });

  it("refuses malformed patches with invalid_argument", () => {
    const read = files({ f: "x\n" }).read;
    for (const patch of [
      "",
      "just some words\n",
      "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n",
      "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n x\n",
      "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n+y\nstray line\n",
      "@@ -1 +1 @@\n-x\n+y\n",
    ]) {
      expect(rejection(patch, read).code, JSON.stringify(patch)).toBe("invalid_argument");
    }
  });

  it("reads git's C-quoted names", () => {
    const patch =
      'diff --git "a/tab\\there" "b/tab\\there"\n--- "a/tab\\there"\n+++ "b/tab\\there"\n@@ -1 +1 @@\n-x\n+y\n';
    expect(planPatch(patch, files({ "tab\there": "x\n" }).read)[0]?.path).toBe("tab\there");
  });
});

describe("patchedPaths", () => {
  it("lists the files a patch touches, in order, without reading them", () => {
    expect(patchedPaths(GIT_PATCH)).toEqual(["src/app.py", "README.md", "old.txt", "empty.txt"]);
  });
});

describe("summarizeChanges", () => {
  it("counts changes the way the patch-apply result reports them", () => {
    const changes: FileChange[] = [
      { path: "a", status: "deleted", content: null },
      { path: "b", status: "modified", content: "b" },
      { path: "c", status: "added", content: "" },
    ];
    expect(summarizeChanges(changes)).toEqual({
      changed: true,
      summary: { total: 3, added: 1, modified: 1, deleted: 1 },
      entries: [
        { path: "a", status: "deleted" },
        { path: "b", status: "modified" },
        { path: "c", status: "added" },
      ],
    });
    expect(summarizeChanges([]).changed).toBe(false);
  });
});
