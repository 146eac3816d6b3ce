import {
  closeSync,
  constants,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
} from "node:fs";
import { chmod, mkdir, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { contentError, DEFAULT_TREE_LIMITS, type ContentOrigin } from "./limits.js";

/** One file system entry of a workspace tree. `mode` holds the permission bits (0o7777). */
export type TreeEntry =
  | { type: "file"; content: Buffer; mode: number }
  | { type: "directory"; mode: number }
  | { type: "symlink"; target: string };

/** A directory's contents keyed by relative POSIX path ("src/main.py"), without the root. */
export type Tree = Map<string, TreeEntry>;

export interface TreeLimits {
  /** @default 100_000 */
  maxEntries?: number;
  /** Most bytes of file content read into memory. @default 256 MiB */
  maxTotalBytes?: number;
  /** Who wrote the directory, which decides the error code. @default "guest" */
  origin?: ContentOrigin;
}

/** How many entries readTree reads between turns of the event loop. */
const ENTRIES_PER_TURN = 1000;

/**
 * Reads a host directory into memory without following symlinks (they are entries, read
 * with readlink), bounded so an oversized tree fails instead of exhausting memory.
 *
 * The reads are synchronous calls, yielding to the event loop every
 * {@link ENTRIES_PER_TURN} entries: an awaited fs promise per entry costs a thread-pool
 * round trip, 20 s for a 100k-file workspace; this takes about 2 s.
 *
 * @throws PyroError `guest_error` (or `invalid_argument` for origin "user") when the tree
 *   is over a limit or holds something other than files, directories and symlinks.
 */
export async function readTree(dir: string, limits: TreeLimits = {}): Promise<Tree> {
  const maxEntries = limits.maxEntries ?? DEFAULT_TREE_LIMITS.maxEntries;
  const maxTotalBytes = limits.maxTotalBytes ?? DEFAULT_TREE_LIMITS.maxTotalBytes;
  const origin = limits.origin ?? "guest";
  const tree: Tree = new Map();
  let totalBytes = 0;

  const readEntry = (path: string): TreeEntry => {
    const full = join(dir, path);
    const stat = lstatSync(full);
    const mode = stat.mode & 0o7777;
    if (stat.isSymbolicLink()) return { type: "symlink", target: readlinkSync(full) };
    if (stat.isDirectory()) return { type: "directory", mode };
    if (!stat.isFile()) {
      throw contentError(
        origin,
        `${full} is not a file, directory or symlink; pyro cannot read it`,
      );
    }
    totalBytes += stat.size;
    if (totalBytes > maxTotalBytes) {
      throw contentError(
        origin,
        `${dir} holds more than ${maxTotalBytes} bytes of files, the most pyro reads at once`,
        { max_bytes: maxTotalBytes },
      );
    }
    return { type: "file", content: readFileNoFollow(full), mode };
  };

  const walk = async (relative: string): Promise<void> => {
    for (const name of readdirSync(join(dir, relative)).sort()) {
      const path = relative === "" ? name : `${relative}/${name}`;
      if (tree.size >= maxEntries) {
        throw contentError(
          origin,
          `${dir} holds more than ${maxEntries} entries, the most pyro reads at once`,
          { max_entries: maxEntries },
        );
      }
      const entry = readEntry(path);
      tree.set(path, entry);
      if (tree.size % ENTRIES_PER_TURN === 0)
        await new Promise<void>((resolve) => setImmediate(resolve));
      if (entry.type === "directory") await walk(path);
    }
  };

  await walk("");
  return tree;
}

/** The entry was a file when checked; O_NOFOLLOW makes sure a swapped-in link is not read. */
function readFileNoFollow(path: string): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a tree into an existing host directory: the inverse of {@link readTree}.
 * Directory modes are set last, so a read-only directory can still be filled.
 */
export async function writeTree(dir: string, tree: Tree): Promise<void> {
  const paths = [...tree.keys()].sort();
  for (const path of paths) {
    const entry = tree.get(path) as TreeEntry;
    const full = join(dir, path);
    await mkdir(dirname(full), { recursive: true });
    if (entry.type === "directory") await mkdir(full, { recursive: true });
    if (entry.type === "symlink") await symlink(entry.target, full);
    if (entry.type === "file") {
      await writeFile(full, entry.content, { mode: entry.mode });
      await chmod(full, entry.mode); // writeFile's mode is filtered by the umask
    }
  }
  for (const path of paths.reverse()) {
    const entry = tree.get(path) as TreeEntry;
    if (entry.type === "directory") await chmod(join(dir, path), entry.mode);
  }
}
