/**
 * Property tests for the patch parser and planner, with GNU `patch` as the oracle: every
 * patch planPatch accepts must leave exactly the files `patch -p1 --fuzz=0` leaves, and
 * every patch it refuses must be refused with invalid_argument. `npm run fuzz` runs these
 * with more cases and fresh seeds (PYRO_PROPERTY_RUNS, PYRO_PROPERTY_SEED).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import { diffTrees } from "../../src/workspace/diff.js";
import { planPatch } from "../../src/workspace/patch.js";
import type { Tree } from "../../src/workspace/tree.js";
import { propertyRuns, propertySeed, random } from "../helpers/random.js";

type Files = Map<string, string>;
type Next = () => number;

const pick = <T>(next: Next, items: readonly T[]): T => items[Math.floor(next() * items.length)]!;

// ---- random workspaces and edits ----

/** Lines that stress matching: repeats (ambiguous context), blanks, tabs, non-ASCII, a CR. */
const WORDS = ["alpha", "beta", "", "gamma", "  indented", "delta\tx", "alpha", "}", "ünï", "cr\r"];
/**
 * Names that collide, nest and need git's C-quoting (a quote, non-ASCII). No spaces: git
 * writes them unquoted, and GNU patch cannot tell which file a hunkless `diff --git a/x y
 * b/x y` section (an empty file) is for; workspace-patch.test.ts covers such names.
 */
const NAMES = ["a", "b.txt", 'q"t', "d", "é"];

function randomText(next: Next, maxLines = 14): string {
  const count = Math.floor(next() * maxLines);
  const text = Array.from({ length: count }, () => pick(next, WORDS)).join("\n");
  return count > 0 && next() < 0.8 ? `${text}\n` : text;
}

function randomPath(next: Next): string {
  return Array.from({ length: 1 + Math.floor(next() * 2) }, () => pick(next, NAMES)).join("/");
}

/** Adds a file unless a file sits where a directory must be, or the reverse. */
function addFile(files: Files, path: string, text: string): void {
  const clashes = [...files.keys()].some(
    (other) => other.startsWith(`${path}/`) || path.startsWith(`${other}/`),
  );
  if (!clashes) files.set(path, text);
}

function randomFiles(next: Next): Files {
  const files: Files = new Map();
  for (let count = 1 + Math.floor(next() * 4); count > 0; count--) {
    addFile(files, randomPath(next), randomText(next));
  }
  return files;
}

function editText(text: string, next: Next): string {
  const lines = text.split("\n");
  for (let edits = 1 + Math.floor(next() * 3); edits > 0; edits--) {
    const at = Math.floor(next() * (lines.length + 1));
    const choice = next();
    if (choice < 0.3) lines.splice(at, 1);
    else if (choice < 0.6) lines.splice(at, 0, pick(next, WORDS));
    else if (at < lines.length) lines[at] = `${lines[at]}!`;
  }
  const edited = lines.join("\n");
  if (next() < 0.15) return edited.endsWith("\n") ? edited.slice(0, -1) : `${edited}\n`;
  return edited;
}

/** Modifies, empties, deletes and adds files, and turns some files into directories. */
function randomEdit(before: Files, next: Next): Files {
  const after: Files = new Map(before);
  for (const [path, text] of before) {
    const choice = next();
    if (choice < 0.15) after.delete(path);
    else if (choice < 0.6) after.set(path, editText(text, next));
    else if (choice < 0.65) after.set(path, "");
    else if (choice < 0.7) {
      after.delete(path);
      after.set(`${path}/inner`, "was a file\n");
    }
  }
  for (let count = Math.floor(next() * 2); count > 0; count--) {
    addFile(after, randomPath(next), randomText(next));
  }
  return after;
}

/** A diffTrees tree holding these files and their parent directories. */
function asTree(files: Files): Tree {
  const tree: Tree = new Map();
  for (const [path, text] of files) {
    const parts = path.split("/");
    for (let depth = 1; depth < parts.length; depth++) {
      tree.set(parts.slice(0, depth).join("/"), { type: "directory", mode: 0o755 });
    }
    tree.set(path, { type: "file", content: Buffer.from(text), mode: 0o644 });
  }
  return tree;
}

/**
 * Lines added at the top of some files after the patch was made, so its hunks must be
 * found at an offset (as `patch` reports "Hunk #1 succeeded at 4 (offset 3 lines)").
 */
function drift(files: Files, next: Next): Files {
  const drifted: Files = new Map(files);
  for (const [path, text] of files) {
    if (text !== "" && next() < 0.4) drifted.set(path, `${randomText(next, 5)}${text}`);
  }
  return drifted;
}

// ---- corrupting a patch ----

/** Each mutation is one way a model or a careless edit breaks a patch. */
const MUTATIONS: ((lines: string[], next: Next) => void)[] = [
  (lines, next) => lines.splice(Math.floor(next() * lines.length), 1),
  (lines, next) => lines.splice(Math.floor(next() * lines.length), 0, pick(next, lines) ?? ""),
  (lines, next) => {
    const at = Math.floor(next() * lines.length);
    lines[at] = (lines[at] ?? "").slice(0, Math.floor(next() * 6));
  },
  (lines, next) => {
    // A hunk header with one number changed: small shifts test the offset search, huge
    // ones (defect 4) must be refused before any search.
    const headers = lines.flatMap((line, i) => (line.startsWith("@@") ? [i] : []));
    if (headers.length === 0) return;
    const at = pick(next, headers);
    const numbers = [...(lines[at] as string).matchAll(/\d+/g)];
    if (numbers.length === 0) return;
    const number = pick(next, numbers);
    const value = pick(next, [0, 1, Number(number[0]) + 1, Number(number[0]) + 5, 99, 1e12]);
    const index = number.index;
    lines[at] =
      `${lines[at]!.slice(0, index)}${value}${lines[at]!.slice(index + number[0].length)}`;
  },
  (lines, next) => {
    const at = Math.floor(next() * lines.length);
    lines.splice(at, 0, "\\ No newline at end of file");
  },
  (lines, next) => {
    const at = Math.floor(next() * lines.length);
    const line = lines[at] ?? "";
    const sign = pick(next, [" ", "-", "+"]);
    if (/^[ +-]/.test(line) && !/^(---|\+\+\+) /.test(line)) lines[at] = `${sign}${line.slice(1)}`;
  },
];

function corrupt(patch: string, next: Next): string {
  const lines = patch.split("\n");
  for (let edits = 1 + Math.floor(next() * 2); edits > 0; edits--) {
    pick(next, MUTATIONS)(lines, next);
  }
  return lines.join("\n");
}

// ---- the two appliers ----

type Outcome = { accepted: true; files: Files } | { accepted: false; error: unknown };

function planPatchOutcome(patch: string, before: Files): Outcome {
  try {
    const files = new Map(before);
    for (const change of planPatch(patch, (path) => before.get(path))) {
      if (change.content === null) files.delete(change.path);
      else files.set(change.path, change.content);
    }
    return { accepted: true, files: sorted(files) };
  } catch (error) {
    return { accepted: false, error };
  }
}

let scratch = "";
let gnuRuns = 0;

/** The text files GNU patch leaves, or its complaint when it refuses the patch. */
function gnuPatch(patch: string, before: Files): Files | string {
  const root = join(scratch, `run${(gnuRuns += 1)}`);
  mkdirSync(root);
  for (const [path, text] of before) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  const patchFile = `${root}.diff`;
  // planPatch reads a patch whose last line lacks its newline (as models often send it) as
  // if it had one; GNU patch says "unexpectedly ends in middle of line". Not a difference
  // in what either does to files, so GNU gets the newline.
  writeFileSync(patchFile, patch.endsWith("\n") ? patch : `${patch}\n`);
  // Exact, as planPatch is: no fuzz, never guess "reversed", no backups or reject files.
  const result = spawnSync(
    "patch",
    [
      "-p1",
      "--fuzz=0",
      "--force",
      "--no-backup-if-mismatch",
      "--reject-file=-",
      "-s",
      "-i",
      patchFile,
    ],
    { cwd: root, encoding: "utf8" },
  );
  try {
    if (result.status !== 0)
      return `patch exited ${result.status}: ${result.stdout}${result.stderr}`;
    return sorted(readFiles(root));
  } finally {
    rmSync(root, { recursive: true, force: true });
    rmSync(patchFile, { force: true });
  }
}

function readFiles(root: string, prefix = ""): Files {
  const files: Files = new Map();
  for (const entry of readdirSync(join(root, prefix), { withFileTypes: true })) {
    const path = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) for (const item of readFiles(root, path)) files.set(...item);
    else files.set(path, readFileSync(join(root, path), "utf8"));
  }
  return files;
}

const sorted = (files: Files): Files => new Map([...files].sort(([a], [b]) => (a < b ? -1 : 1)));

/**
 * GNU patch 2.7.6 cannot turn a file into a directory or back in one patch ("Invalid file
 * name x/inner -- skipping patch", "File x is not a regular file", even with the deletion
 * first), so such results have no GNU oracle; the valid-patch property checks them against
 * the edited files instead.
 */
function replacesFileWithDirectory(before: Files, after: Files): boolean {
  const nestsUnder = (inner: Files, outer: Files) =>
    [...inner.keys()].some((path) =>
      path.split("/").some((_, depth, parts) => outer.has(parts.slice(0, depth).join("/"))),
    );
  return nestsUnder(after, before) || nestsUnder(before, after);
}

/** How many accepted patches had GNU patch's result to compare with (reported on failure). */
const tally = { gnuCompared: 0, gnuSkipped: 0 };
beforeEach(() => Object.assign(tally, { gnuCompared: 0, gnuSkipped: 0 }));

/**
 * Applies a patch both ways. An accepted patch must give GNU patch's files exactly; a
 * refused one must be a PyroError invalid_argument. Returns planPatch's files, or
 * undefined when it refused.
 */
function crossCheck(patch: string, before: Files, context: string): Files | undefined {
  const ours = planPatchOutcome(patch, before);
  if (!ours.accepted) {
    expect(ours.error, context).toBeInstanceOf(PyroError);
    expect((ours.error as PyroError).code, context).toBe("invalid_argument");
    return undefined;
  }
  if (replacesFileWithDirectory(before, ours.files)) {
    tally.gnuSkipped += 1;
    return ours.files;
  }
  const gnu = gnuPatch(patch, before);
  // GNU patch 2.7.6 fails to write a file whose new last line is empty and lacks its
  // newline ("**** write error : Success", or "No such file or directory" for a new file).
  if (typeof gnu === "string" && gnu.includes("**** write error")) {
    tally.gnuSkipped += 1;
    return ours.files;
  }
  expect(ours.files, `${context}\nGNU patch disagrees`).toEqual(gnu);
  tally.gnuCompared += 1;
  return ours.files;
}

/** A test's timeout grows with the case count `npm run fuzz` asks for (~20 ms a case). */
const timeoutFor = (defaultRuns: number) => 10_000 + propertyRuns(defaultRuns) * 50;

const describeReplay = (seed: number, run: number, patch: string, before: Files) =>
  `seed ${seed} run ${run} (replay: PYRO_PROPERTY_SEED=${seed})\n--- files ---\n${JSON.stringify([...before])}\n--- patch ---\n${patch}`;

beforeAll(() => {
  expect(() => execFileSync("patch", ["--version"]), "GNU patch must be installed").not.toThrow();
  scratch = mkdtempSync(join(tmpdir(), "pyro-patch-prop-"));
});
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

describe("planPatch against GNU patch", () => {
  it(
    "valid git patches, applied as made or to drifted files, give what GNU patch gives",
    () => {
      const seed = propertySeed(4242);
      const next = random(seed);
      const seen = { applied: 0, drifted: 0, refused: 0, typeChanged: 0, noNewline: 0 };
      for (let run = 0; run < propertyRuns(150); run++) {
        const before = randomFiles(next);
        const after = randomEdit(before, next);
        const patch = diffTrees(asTree(before), asTree(after)).patch;
        if (patch === "") continue;
        const shifted = next() < 0.5;
        const target = shifted ? drift(before, next) : before;
        const context = describeReplay(seed, run, patch, target);
        const result = crossCheck(patch, target, context);
        if (result === undefined) {
          // Only a drifted file may refuse (its new lines can make the context ambiguous);
          // the patch as made must always apply.
          expect(shifted, context).toBe(true);
          seen.refused += 1;
          continue;
        }
        // Undrifted, the edited files are an oracle of their own, type changes included.
        if (!shifted) expect(result, context).toEqual(sorted(after));
        seen.applied += 1;
        if (shifted) seen.drifted += 1;
        if (replacesFileWithDirectory(before, after)) seen.typeChanged += 1;
        if (patch.includes("\\ No newline")) seen.noNewline += 1;
      }
      // The generator must reach the awkward cases, or agreeing with GNU proves little.
      const runs = propertyRuns(150);
      expect(
        seen.applied,
        `seed ${seed}: ${JSON.stringify({ ...seen, ...tally })}`,
      ).toBeGreaterThan(runs * 0.6);
      expect(tally.gnuCompared, `seed ${seed}: ${JSON.stringify(tally)}`).toBeGreaterThan(
        runs * 0.5,
      );
      for (const [name, count] of Object.entries(seen)) {
        if (name !== "refused")
          expect(count, `seed ${seed}: ${name} ${JSON.stringify(seen)}`).toBeGreaterThan(
            runs * 0.03,
          );
      }
    },
    timeoutFor(150),
  );

  it(
    "corrupted patches are refused with invalid_argument or give what GNU patch gives",
    () => {
      const seed = propertySeed(7);
      const next = random(seed);
      const counts = { accepted: 0, rejected: 0 };
      const runs = propertyRuns(250);
      for (let run = 0; run < runs; run++) {
        const before = randomFiles(next);
        const valid = diffTrees(asTree(before), asTree(randomEdit(before, next))).patch;
        if (valid === "") continue;
        const patch = corrupt(valid, next);
        const result = crossCheck(patch, before, describeReplay(seed, run, patch, before));
        counts[result === undefined ? "rejected" : "accepted"] += 1;
      }
      // Both outcomes must be common, or the corruption is too weak or too strong to test
      // anything (an always-refusing planPatch would pass the loop above).
      const summary = `seed ${seed}: ${JSON.stringify({ ...counts, ...tally })}`;
      expect(counts.accepted, summary).toBeGreaterThan(runs * 0.08);
      expect(counts.rejected, summary).toBeGreaterThan(runs * 0.15);
      // Most accepted patches must have met GNU patch, not only the skipped shapes.
      expect(tally.gnuCompared, summary).toBeGreaterThan(counts.accepted * 0.5);
    },
    timeoutFor(250),
  );
});
