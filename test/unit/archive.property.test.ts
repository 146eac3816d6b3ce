import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import { extractArchive, packTree, type ContentOrigin } from "../../src/workspace/archive.js";
import { readTree, type Tree, type TreeEntry } from "../../src/workspace/tree.js";
import { propertyRuns, propertySeed, random } from "../helpers/random.js";
import { entry, fixChecksum, pax, tar } from "../helpers/tar.js";

/**
 * Random and mutated tar bytes into extractArchive. Every outcome must be a PyroError that
 * left dest empty, or a tree in dest while nothing outside dest changed (so no entry
 * escaped and nothing was written through a link: every link the generator makes points
 * outside dest, or at a name no entry uses). An unmutated well-formed archive must be
 * accepted and read back as the tree it was packed from.
 */

const RUNS = propertyRuns(120);
const SEED = propertySeed(20261130);
const LIMITS = { maxEntries: 40, maxTotalBytes: 64 * 1024 };
/** A link target inside dest that no entry is ever named: writing through it would make it. */
const INNER_ONLY = "inner-only";

type Rand = () => number;
const int = (rand: Rand, below: number) => Math.floor(rand() * below);
const pick = <T>(rand: Rand, items: readonly T[]): T => items[int(rand, items.length)] as T;

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "pyro-archive-prop-"));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** Where one case's links point: a host directory with a canary, next to dest. */
interface Case {
  dir: string;
  dest: string;
  target: string;
}

async function makeCase(index: number): Promise<Case> {
  const dir = join(scratch, `case-${index}`);
  const target = join(dir, "target");
  const dest = join(dir, "dest");
  await mkdir(join(target, "sub"), { recursive: true });
  await mkdir(dest);
  await writeFile(join(target, "canary"), "untouched");
  return { dir, dest, target };
}

function linkTargets(c: Case): string[] {
  return [c.target, "../target", "..", "../..", INNER_ONLY, `${INNER_ONLY}/deeper`, c.dir];
}

/** A well-formed tree: names only under directories, links to anywhere. */
function cleanTree(rand: Rand, c: Case): Tree {
  const tree: Tree = new Map();
  const directories = [""];
  const count = 1 + int(rand, 12);
  for (let i = 0; i < count; i++) {
    const parent = pick(rand, directories);
    const path = parent === "" ? `n${i}` : `${parent}/n${i}`;
    const kind = pick(rand, ["file", "file", "directory", "symlink"] as const);
    let value: TreeEntry;
    if (kind === "directory") {
      value = { type: "directory", mode: pick(rand, [0o755, 0o700]) };
      directories.push(path);
    } else if (kind === "symlink") {
      value = { type: "symlink", target: pick(rand, linkTargets(c)) };
    } else {
      const content = Buffer.alloc(int(rand, 2048), 97 + int(rand, 26));
      value = { type: "file", content, mode: pick(rand, [0o644, 0o755, 0o600]) };
    }
    tree.set(path, value);
  }
  return tree;
}

/** Any mix of names, types and link targets, hostile ones included. */
function hostileArchive(rand: Rand, c: Case): Buffer {
  const parts = ["a", "b", "link", "..", ".", ""];
  const blocks: Buffer[] = [];
  const count = 1 + int(rand, 10);
  for (let i = 0; i < count; i++) {
    const depth = 1 + int(rand, 3);
    let name = Array.from({ length: depth }, () => pick(rand, parts)).join("/");
    if (rand() < 0.1) name = `${pick(rand, [c.target, c.dir, ""])}/${name}`;
    const type = pick(rand, ["0", "0", "5", "2", "2", "1", "6", "3", "7"]);
    const linkname = type === "1" || type === "2" ? pick(rand, linkTargets(c)) : "";
    if (rand() < 0.15) blocks.push(pax({ path: name }));
    const content = type === "0" ? "x".repeat(int(rand, 700)) : "";
    blocks.push(entry({ name: rand() < 0.15 ? "harmless" : name, type, linkname }, content));
  }
  return tar(...blocks);
}

/** Byte-level damage: flips, truncation, spliced or duplicated blocks, edited headers. */
function mutate(rand: Rand, input: Buffer): Buffer {
  let bytes = Buffer.from(input);
  const rounds = 1 + int(rand, 3);
  for (let round = 0; round < rounds; round++) {
    const blocks = Math.max(1, Math.floor(bytes.length / 512));
    const at = int(rand, bytes.length);
    switch (int(rand, 6)) {
      case 0: // flip a byte
        bytes[at] = int(rand, 256);
        break;
      case 1: // truncate
        bytes = bytes.subarray(0, at);
        break;
      case 2: // insert random bytes
        bytes = Buffer.concat([
          bytes.subarray(0, at),
          Buffer.from(Array.from({ length: 1 + int(rand, 600) }, () => int(rand, 256))),
          bytes.subarray(at),
        ]);
        break;
      case 3: {
        // duplicate a block
        const block = int(rand, blocks) * 512;
        const copy = bytes.subarray(block, block + 512);
        bytes = Buffer.concat([bytes.subarray(0, block), copy, bytes.subarray(block)]);
        break;
      }
      case 4: {
        // change a header field and make the checksum right again, so the parser takes it
        const block = int(rand, blocks) * 512;
        if (block + 512 <= bytes.length) {
          const field = pick(rand, [0, 100, 124, 156, 157]);
          bytes[block + field + int(rand, 8)] = pick(rand, [0x30, 0x31, 0x32, 0x35, 0x2f, 0x2e, 0]);
          fixChecksum(bytes.subarray(block, block + 512));
        }
        break;
      }
      default: // trailing garbage after the end
        bytes = Buffer.concat([bytes, Buffer.alloc(int(rand, 4096), int(rand, 256))]);
    }
  }
  return bytes;
}

/** Splits into random chunk sizes, 1-byte chunks included, as a socket or pipe might. */
function chunked(rand: Rand, bytes: Buffer): Buffer[] {
  if (rand() < 0.5) return [bytes];
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length;) {
    const size = rand() < 0.3 ? 1 : 1 + int(rand, 2000);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/** Everything under `dir` except dest's contents: type, link target or file content. */
function outsideDest(c: Case): Map<string, string> {
  const seen = new Map<string, string>();
  const walk = (relative: string) => {
    const full = join(c.dir, relative);
    const stats = lstatSync(full);
    if (stats.isSymbolicLink()) seen.set(relative, `link ${readlinkSync(full)}`);
    else if (stats.isFile()) seen.set(relative, `file ${readFileSync(full, "utf8")}`);
    else if (stats.isDirectory()) {
      seen.set(relative, "dir");
      if (full === c.dest) return;
      for (const name of readdirSync(full)) walk(relative === "" ? name : `${relative}/${name}`);
    } else seen.set(relative, "other");
  };
  walk("");
  return seen;
}

it("random and mutated tars are refused cleanly or extracted without escaping dest", async () => {
  const rand = random(SEED);
  const counts = { accepted: 0, rejected: 0, cleanAccepted: 0 };
  for (let run = 0; run < RUNS; run++) {
    const where = `(seed ${SEED}, case ${run}; replay with PYRO_PROPERTY_SEED=${SEED})`;
    const c = await makeCase(run);
    const before = outsideDest(c);
    const clean = rand() < 0.5 ? cleanTree(rand, c) : undefined;
    let bytes = clean ? packTree(clean) : hostileArchive(rand, c);
    let mutated = rand() < 0.5;
    if (mutated) bytes = mutate(rand, bytes);
    const origin: ContentOrigin = rand() < 0.7 ? "guest" : "user";
    const gzipped = origin === "user" && rand() < 0.5;
    if (gzipped) bytes = gzipSync(bytes);
    if (gzipped && rand() < 0.3) {
      bytes = mutate(rand, bytes);
      mutated = true;
    }

    const outcome = await extractArchive(Readable.from(chunked(rand, bytes)), c.dest, LIMITS, {
      origin,
    }).then(
      () => undefined,
      (error: unknown) => error,
    );

    if (outcome === undefined) {
      counts.accepted += 1;
      expect(readdirSync(c.dest).includes(INNER_ONLY), `wrote through a link ${where}`).toBe(false);
      if (clean && !mutated) {
        counts.cleanAccepted += 1;
        expect(await readTree(c.dest), `clean tree read back ${where}`).toEqual(clean);
      }
    } else {
      counts.rejected += 1;
      expect(outcome, `threw something other than a PyroError ${where}`).toBeInstanceOf(PyroError);
      expect((outcome as PyroError).code, where).toBe(
        origin === "guest" ? "guest_error" : "invalid_argument",
      );
      expect(await readdir(c.dest), `left files in dest ${where}`).toEqual([]);
      expect(
        clean !== undefined && !mutated,
        `refused a clean archive ${where}: ${String(outcome)}`,
      ).toBe(false);
    }
    expect(outsideDest(c), `changed something outside dest ${where}`).toEqual(before);
    await rm(c.dir, { recursive: true, force: true });
  }
  console.log(`archive property: ${RUNS} cases, seed ${SEED}, ${JSON.stringify(counts)}`);
  // Both outcomes must happen, or the generator has stopped testing one side.
  if (RUNS >= 50) {
    expect(counts.accepted, `no archive was accepted (seed ${SEED})`).toBeGreaterThan(0);
    expect(counts.rejected, `no archive was rejected (seed ${SEED})`).toBeGreaterThan(0);
    expect(counts.cleanAccepted, `no clean archive was tried (seed ${SEED})`).toBeGreaterThan(0);
  }
}, 60_000);
