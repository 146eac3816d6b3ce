/**
 * Manifests: what a tree holds, without its content (type, mode, SHA-256 of each file,
 * link targets). The diff compares the guest's manifest with the baseline's and copies
 * out only the files whose entries differ.
 */
import { createHash } from "node:crypto";
import { PyroError } from "../contract/errors.js";
import type { WireManifestLine } from "../guest/files.js";
import type { Tree, TreeEntry } from "./tree.js";

export type ManifestEntry =
  | { type: "file"; size: number; mode: number; sha256: string }
  | { type: "directory"; mode: number }
  | { type: "symlink"; target: string };

/** Keyed by relative POSIX path, as a {@link Tree} is. */
export type Manifest = Map<string, ManifestEntry>;

/** Linux PATH_MAX and NAME_MAX, as for archive entries. */
const MAX_PATH_BYTES = 4096;
const MAX_NAME_BYTES = 255;

export function sha256Hex(content: Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

export function manifestOfTree(tree: Tree): Manifest {
  const manifest: Manifest = new Map();
  for (const [path, entry] of tree) manifest.set(path, manifestEntry(entry));
  return manifest;
}

function manifestEntry(entry: TreeEntry): ManifestEntry {
  if (entry.type === "file") {
    return {
      type: "file",
      size: entry.content.length,
      mode: entry.mode,
      sha256: sha256Hex(entry.content),
    };
  }
  return entry.type === "directory" ? { type: "directory", mode: entry.mode } : { ...entry };
}

/**
 * The paths whose entries differ, sorted: added, deleted, a changed type, a file whose
 * content or executable bit changed, a symlink whose target changed. These are exactly
 * the paths `diffTrees` reports (it looks at nothing else: not owners, not other mode
 * bits, not directory modes), so a diff of only these paths is the whole diff.
 */
export function changedPaths(before: Manifest, after: Manifest): string[] {
  const paths = new Set([...before.keys(), ...after.keys()]);
  return [...paths].filter((path) => differs(before.get(path), after.get(path))).sort();
}

function differs(before?: ManifestEntry, after?: ManifestEntry): boolean {
  if (!before || !after) return before !== after;
  if (before.type === "file" && after.type === "file") {
    return before.sha256 !== after.sha256 || (before.mode & 0o111) !== (after.mode & 0o111);
  }
  if (before.type === "symlink" && after.type === "symlink") return before.target !== after.target;
  return before.type !== after.type;
}

/** The entries of `tree` at `paths` (those it has). */
export function pickTree(tree: Tree, paths: Iterable<string>): Tree {
  const picked: Tree = new Map();
  for (const path of paths) {
    const entry = tree.get(path);
    if (entry) picked.set(path, entry);
  }
  return picked;
}

export interface ManifestLimits {
  maxEntries: number;
  /** Most bytes of file content, summed over the manifest's sizes. */
  maxTotalBytes: number;
}

/**
 * Turns the guest's manifest lines into a {@link Manifest}, refusing anything an honest
 * agent would not send: a path that is absolute, has an empty, `.` or `..` component or
 * is over the Linux limits; a path listed twice; an entry whose parent is not listed as
 * a directory (the listing is recursive, so every parent is in it); a file without a
 * hash, or another type with one; a symlink without a target; more entries or bytes
 * than the limits.
 *
 * @throws PyroError `guest_error` naming the first problem.
 */
export function checkGuestManifest(lines: WireManifestLine[], limits: ManifestLimits): Manifest {
  if (lines.length > limits.maxEntries) {
    throw refused(`it has more than ${limits.maxEntries} entries`);
  }
  const manifest: Manifest = new Map();
  let totalBytes = 0;
  for (const line of lines) {
    checkPath(line.path);
    if (manifest.has(line.path)) throw refused(`${JSON.stringify(line.path)} is listed twice`);
    const entry = entryOf(line);
    if (entry.type === "file") totalBytes += entry.size;
    if (totalBytes > limits.maxTotalBytes) {
      throw refused(`its files hold more than ${limits.maxTotalBytes} bytes`);
    }
    manifest.set(line.path, entry);
  }
  for (const path of manifest.keys()) {
    const slash = path.lastIndexOf("/");
    if (slash < 0) continue;
    const parent = manifest.get(path.slice(0, slash));
    if (parent?.type !== "directory") {
      throw refused(
        `${JSON.stringify(path)} is listed, but its parent is not listed as a directory`,
      );
    }
  }
  return manifest;
}

function checkPath(path: string): void {
  const parts = path.split("/");
  const bad =
    path === "" ||
    Buffer.byteLength(path) > MAX_PATH_BYTES ||
    path.includes("\0") ||
    parts.some(
      (part) =>
        part === "" || part === "." || part === ".." || Buffer.byteLength(part) > MAX_NAME_BYTES,
    );
  if (bad) throw refused(`it names the path ${JSON.stringify(path.slice(0, 200))}`);
}

function entryOf(line: WireManifestLine): ManifestEntry {
  const where = JSON.stringify(line.path);
  if ((line.artifact_type === "file") !== (line.sha256 !== null)) {
    throw refused(`${where} is a ${line.artifact_type} with a hash that does not fit its type`);
  }
  if ((line.artifact_type === "symlink") !== (line.link_target !== null)) {
    throw refused(
      `${where} is a ${line.artifact_type} with a link target that does not fit its type`,
    );
  }
  if (line.artifact_type === "file") {
    return { type: "file", size: line.size_bytes, mode: line.mode, sha256: line.sha256 as string };
  }
  if (line.artifact_type === "symlink")
    return { type: "symlink", target: line.link_target as string };
  return { type: "directory", mode: line.mode };
}

function refused(problem: string): PyroError {
  return new PyroError(
    "guest_error",
    `the file manifest from the guest was rejected: ${problem}; nothing was compared`,
  );
}

/** A manifest as JSON (for the baseline's cache file), and back. */
export function manifestToJson(manifest: Manifest): string {
  return JSON.stringify([...manifest]);
}

export function manifestFromJson(text: string): Manifest | undefined {
  try {
    const pairs = JSON.parse(text) as unknown;
    return Array.isArray(pairs) ? new Map(pairs as [string, ManifestEntry][]) : undefined;
  } catch {
    return undefined;
  }
}
