import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { manifestOfArchive, readArchivePaths } from "../../src/workspace/archive-scan.js";
import { DEFAULT_ARCHIVE_LIMITS, packTree } from "../../src/workspace/archive.js";
import { diffTrees } from "../../src/workspace/diff.js";
import { changedPaths, manifestOfTree, pickTree } from "../../src/workspace/manifest.js";
import type { Tree, TreeEntry } from "../../src/workspace/tree.js";
import { propertyRuns, propertySeed, random } from "../helpers/random.js";

/**
 * The manifest diff moves only the paths whose manifest entries differ. It is right only
 * if diffTrees over those paths alone gives exactly the diff of the whole trees: random
 * baselines and random edits of them (content, executable bit, other mode bits, type
 * changes, links, new and deleted directories) check that, with the baseline side read
 * from its archive as the workspace diff reads it.
 */

const RUNS = propertyRuns(150);
const SEED = propertySeed(20261201);

type Rand = () => number;
const int = (rand: Rand, below: number) => Math.floor(rand() * below);
const pick = <T>(rand: Rand, items: readonly T[]): T => items[int(rand, items.length)] as T;

const NAMES = ["a", "b", "src", "x.txt", "-n", "with space", "é"];
const TEXTS = ["", "one\n", "one\ntwo\n", "no newline", "line\n".repeat(20), "\0binary\x01"];
/** Modes as extraction leaves them (owner rw, no group/other write): the archive keeps these. */
const FILE_MODES = [0o644, 0o755, 0o600, 0o700, 0o744];

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "pyro-manifest-prop-"));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function randomEntry(rand: Rand): TreeEntry {
  const kind = int(rand, 10);
  if (kind < 6) {
    return { type: "file", content: Buffer.from(pick(rand, TEXTS)), mode: pick(rand, FILE_MODES) };
  }
  if (kind < 8) return { type: "symlink", target: pick(rand, ["a", "../b", "/etc/passwd"]) };
  return { type: "directory", mode: 0o755 };
}

/** A consistent tree: every parent of an entry is a directory of the tree. */
function randomTree(rand: Rand): Tree {
  const tree: Tree = new Map();
  const add = (prefix: string, depth: number) => {
    const count = int(rand, 5);
    for (let i = 0; i < count; i++) {
      const path = prefix + pick(rand, NAMES);
      if (tree.has(path)) continue;
      const entry = depth < 2 ? randomEntry(rand) : { ...randomEntry(rand) };
      if (entry.type === "directory" && depth >= 2) continue;
      tree.set(path, entry);
      if (entry.type === "directory") add(`${path}/`, depth + 1);
    }
  };
  add("", 0);
  return tree;
}

/** Drops an entry and everything under it. */
function remove(tree: Tree, path: string): void {
  for (const key of [...tree.keys()]) {
    if (key === path || key.startsWith(`${path}/`)) tree.delete(key);
  }
}

function edit(base: Tree, rand: Rand): Tree {
  const tree: Tree = new Map(base);
  const edits = int(rand, 6);
  for (let i = 0; i < edits; i++) {
    const paths = [...tree.keys()];
    const path = paths.length > 0 ? pick(rand, paths) : "";
    const entry = tree.get(path);
    const action = int(rand, 6);
    if (!entry || action === 0) {
      const added = `${path && entry?.type === "directory" ? `${path}/` : ""}${pick(rand, NAMES)}`;
      if (!tree.has(added)) tree.set(added, randomEntry(rand));
    } else if (action === 1) {
      remove(tree, path);
    } else if (action === 2) {
      remove(tree, path);
      tree.set(path, randomEntry(rand)); // a type change, or the same type anew
    } else if (entry.type === "file") {
      const content = action === 3 ? Buffer.from(pick(rand, TEXTS)) : entry.content;
      tree.set(path, { ...entry, content, mode: pick(rand, FILE_MODES) });
    }
  }
  return tree;
}

it("a diff of only the changed paths is the diff of the whole trees", async () => {
  for (let run = 0; run < RUNS; run++) {
    const rand = random(SEED + run);
    const baseline = randomTree(rand);
    const current = edit(baseline, rand);
    const archive = join(scratch, `baseline-${run}.tar`);
    await writeFile(archive, packTree(baseline));
    const before = await manifestOfArchive(archive, DEFAULT_ARCHIVE_LIMITS);
    const context = `seed ${SEED + run}`;
    expect(before, context).toEqual(manifestOfTree(baseline));
    const changed = changedPaths(before, manifestOfTree(current));
    const fromArchive = await readArchivePaths(archive, new Set(changed), DEFAULT_ARCHIVE_LIMITS);
    const partial = diffTrees(fromArchive, pickTree(current, changed));
    expect(partial, context).toEqual(diffTrees(baseline, current));
  }
});
