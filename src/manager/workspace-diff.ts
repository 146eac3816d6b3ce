import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PyroError } from "../contract/errors.js";
import type { ChannelClient } from "../guest/client.js";
import { readFileBytes, readManifest } from "../guest/files.js";
import { MANIFEST_MAX_ENTRIES } from "../guest/ops/index.js";
import { writeFileAtomic } from "../util/fs.js";
import { readArchivePaths, manifestOfArchive } from "../workspace/archive-scan.js";
import { DEFAULT_ARCHIVE_LIMITS, extractArchive } from "../workspace/archive.js";
import { diffTrees, type WorkspaceDiff } from "../workspace/diff.js";
import { DEFAULT_TREE_LIMITS } from "../workspace/limits.js";
import {
  changedPaths,
  checkGuestManifest,
  manifestFromJson,
  manifestToJson,
  type Manifest,
} from "../workspace/manifest.js";
import { guestPath, WORKSPACE_ROOT } from "../workspace/paths.js";
import { readTree, type Tree } from "../workspace/tree.js";
import { captureFilesFromGuest, captureFromGuest } from "./workspace-guest.js";

/**
 * A workspace's diff against its baseline, moving only what changed: the agent hashes
 * /workspace (`file_manifest`), the host compares that with the baseline's manifest
 * (computed once from baseline.tar and cached beside it), and only the files whose
 * entries differ are copied out of the guest and read from the baseline. Both sides of
 * the comparison then go through the same `diffTrees`, restricted to those paths, which
 * gives the very result a comparison of the whole trees would (see `changedPaths`).
 */
export async function diffWithGuest(
  client: ChannelClient,
  workspaceDir: string,
  baselinePath: string,
): Promise<WorkspaceDiff> {
  const before = await baselineManifest(workspaceDir, baselinePath);
  const after = await guestManifest(client);
  if (!after) return diffWholeTrees(client, baselinePath);
  const changed = changedPaths(before, after);
  const fetched = changed.filter((path) => after.get(path)?.type === "file");
  const baseline = await readArchivePaths(baselinePath, new Set(changed), DEFAULT_TREE_LIMITS);
  const current = await currentEntries(client, after, changed, fetched);
  return diffTrees(baseline, current);
}

/**
 * A few small changed files are read one by one (`file_read`, no process in the guest);
 * more, or larger ones, come out in one archive from the guest's tar.
 */
const MAX_SINGLE_READS = 64;
const MAX_SINGLE_READ_BYTES = 1 << 20;

/** The guest's entries at `changed`: directories and links from the manifest, files copied out. */
async function currentEntries(
  client: ChannelClient,
  manifest: Manifest,
  changed: string[],
  fetched: string[],
): Promise<Tree> {
  const files = await fetchFiles(client, manifest, fetched);
  const tree: Tree = new Map();
  for (const path of changed) {
    const entry = manifest.get(path);
    if (entry?.type === "directory") tree.set(path, { type: "directory", mode: entry.mode });
    if (entry?.type === "symlink") tree.set(path, { type: "symlink", target: entry.target });
    // A file gone (or no longer a file) since the manifest is left out: the diff shows it
    // as it is now.
    const file = entry?.type === "file" ? files.get(path) : undefined;
    if (file?.type === "file") tree.set(path, file);
    else if (entry?.type === "file" && path.includes("\uFFFD")) throw notUtf8(path);
  }
  return tree;
}

async function fetchFiles(client: ChannelClient, manifest: Manifest, paths: string[]) {
  const small = paths.every((path) => {
    const entry = manifest.get(path);
    return entry?.type === "file" && entry.size <= MAX_SINGLE_READ_BYTES;
  });
  if (paths.length <= MAX_SINGLE_READS && small) return readFiles(client, manifest, paths);
  const captured = await captureFilesFromGuest(client, paths);
  try {
    return await readTree(captured.root);
  } finally {
    await captured.cleanup();
  }
}

async function readFiles(client: ChannelClient, manifest: Manifest, paths: string[]) {
  const tree: Tree = new Map();
  for (const path of paths) {
    const entry = manifest.get(path);
    if (entry?.type !== "file") continue;
    const file = await readFileBytes(client, {
      root: WORKSPACE_ROOT,
      path,
      max_bytes: MAX_SINGLE_READ_BYTES,
    }).catch((error: unknown) => {
      if (error instanceof PyroError && error.code === "not_found") return undefined;
      throw error;
    });
    if (file?.truncated) {
      throw new PyroError(
        "unavailable",
        `${guestPath(path)} grew while the diff read it; run the diff again when the workspace is quiet`,
      );
    }
    if (file) tree.set(path, { type: "file", content: file.content, mode: entry.mode });
  }
  return tree;
}

/** The agent writes bytes of a name that are not UTF-8 as U+FFFD, which names nothing. */
function notUtf8(path: string): PyroError {
  return new PyroError(
    "unavailable",
    `the name of ${guestPath(path)} in the workspace is not valid UTF-8, which a diff cannot show; rename it (for example with workspace_exec and mv) and diff again`,
  );
}

/**
 * File content the agent hashes for one diff. It hashes in one turn of its loop (about
 * 190 MB/s natively, several times slower under TCG), so this bounds how long other
 * calls on the workspace wait. A larger workspace is diffed as whole trees instead.
 */
const MANIFEST_HASH_BYTES = 64 << 20;

/** The guest's manifest, or undefined when /workspace is over the manifest's bounds. */
async function guestManifest(client: ChannelClient): Promise<Manifest | undefined> {
  const manifest = await readManifest(client, {
    root: WORKSPACE_ROOT,
    path: ".",
    max_entries: MANIFEST_MAX_ENTRIES,
    max_bytes: MANIFEST_HASH_BYTES,
  });
  if (manifest.truncated) return undefined;
  return checkGuestManifest(manifest.lines, {
    maxEntries: MANIFEST_MAX_ENTRIES,
    maxTotalBytes: MANIFEST_HASH_BYTES,
  });
}

/**
 * The diff of the whole trees, as before manifests: the baseline unpacked, /workspace
 * copied out whole (both bounded by the tree limits).
 */
async function diffWholeTrees(client: ChannelClient, baselinePath: string) {
  const root = await mkdtemp(join(tmpdir(), "pyro-tree-"));
  try {
    await extractArchive(baselinePath, root, DEFAULT_ARCHIVE_LIMITS, { origin: "guest" });
    const current = await captureFromGuest(client, "");
    try {
      return diffTrees(await readTree(root), await readTree(current.root));
    } finally {
      await current.cleanup();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const MANIFEST_CACHE = "baseline-manifest.json";
const CACHE_FORMAT = 1;

/**
 * The baseline's manifest, cached in the workspace's directory. The baseline never
 * changes after creation, but the cache is keyed on the file's identity (inode, size,
 * mtime) anyway, so a replaced or copied baseline is never compared with a stale list.
 */
async function baselineManifest(workspaceDir: string, baselinePath: string): Promise<Manifest> {
  const info = await stat(baselinePath);
  const key = `${CACHE_FORMAT}:${info.ino}:${info.size}:${info.mtimeMs}`;
  const cachePath = join(workspaceDir, MANIFEST_CACHE);
  const cached = await readFile(cachePath, "utf8").catch(() => "");
  const newline = cached.indexOf("\n");
  if (newline > 0 && cached.slice(0, newline) === key) {
    const manifest = manifestFromJson(cached.slice(newline + 1));
    if (manifest) return manifest;
  }
  const manifest = await manifestOfArchive(baselinePath, DEFAULT_ARCHIVE_LIMITS);
  await writeFileAtomic(cachePath, `${key}\n${manifestToJson(manifest)}`, 0o600, {
    createParent: false,
  });
  return manifest;
}
