/**
 * Host content on its way into a workspace: validating a user's seed path, and packing
 * host directories or in-memory trees as tars for the guest.
 */
import { readdir, stat } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import { Header, Pack, Pax, type HeaderData } from "tar";
import { asPyroError, PyroError } from "../contract/errors.js";
import { isErrno } from "../util/fs.js";
import type { Tree, TreeEntry } from "./tree.js";

/**
 * Validates a user's seed path on the host before any VM work: a directory, or a
 * `.tar`, `.tar.gz` or `.tgz` file.
 *
 * @throws PyroError `invalid_argument` saying what is accepted.
 */
export async function detectSeed(
  path: string,
  field = "seed_path",
): Promise<{ mode: "directory" | "tar_archive"; path: string }> {
  const absolute = resolve(path);
  const info = await stat(absolute).catch((error: unknown) => {
    if (isErrno(error, "ENOENT")) {
      throw new PyroError("invalid_argument", `${field} ${path} does not exist`, {
        details: { field },
      });
    }
    throw asPyroError(error, `reading ${field} ${path}`);
  });
  if (info.isDirectory()) return { mode: "directory", path: absolute };
  if (info.isFile() && /\.(tar|tar\.gz|tgz)$/i.test(absolute)) {
    return { mode: "tar_archive", path: absolute };
  }
  throw new PyroError(
    "invalid_argument",
    `${field} ${path} is not a directory or a .tar, .tar.gz or .tgz archive`,
    { details: { field } },
  );
}

/**
 * Hard links become separate files: our extractor (and the guest's) refuses hard links,
 * and node-tar emits one for every file whose inode it has already packed.
 */
class NoHardLinks extends Map<`${number}:${number}`, string> {
  override get(): undefined {
    return undefined;
  }
}

/**
 * Packs a host directory (or the given entries of it) as a plain tar for the guest:
 * symlinks stay symlinks (never followed), owners are 0, no atime/ctime. node-tar's
 * portable mode also clears group and other write bits.
 */
export async function packDirectory(dir: string, entries?: string[]): Promise<Buffer> {
  const names =
    entries ??
    (
      await readdir(dir).catch((error: unknown) => {
        throw asPyroError(error, `reading directory ${dir} to pack it`);
      })
    ).sort();
  for (const name of names) {
    if (isAbsolute(name) || name.split("/").includes("..")) {
      throw new PyroError(
        "invalid_argument",
        `cannot pack ${JSON.stringify(name)}: give paths inside ${dir}`,
      );
    }
  }
  const pack = new Pack({ cwd: dir, portable: true, linkCache: new NoHardLinks() });
  for (const name of names) pack.add(name);
  pack.end();
  return pack.concat();
}

const TAR_TYPES: Record<TreeEntry["type"], HeaderData["type"]> = {
  file: "File",
  directory: "Directory",
  symlink: "SymbolicLink",
};

/** Packs an in-memory tree as a plain tar (paths sorted, owners 0). */
export function packTree(tree: Tree, mtime = new Date()): Buffer {
  const blocks: Buffer[] = [];
  for (const path of [...tree.keys()].sort()) {
    blocks.push(...entryBlocks(path, tree.get(path) as TreeEntry, mtime));
  }
  blocks.push(Buffer.alloc(1024)); // end of archive: two zero blocks
  return Buffer.concat(blocks);
}

function entryBlocks(path: string, entry: TreeEntry, mtime: Date): Buffer[] {
  const size = entry.type === "file" ? entry.content.length : 0;
  const blocks = tarHeaderBlocks(path, entry, size, mtime);
  if (entry.type === "file") blocks.push(entry.content, Buffer.alloc((512 - (size % 512)) % 512));
  return blocks;
}

/** What a tar header says about an entry (its content, for a file, follows the header). */
export type HeaderEntry =
  { type: "file" | "directory"; mode: number } | { type: "symlink"; target: string };

/**
 * The header block of an entry, after a pax header when its path or link target does not
 * fit the ustar fields. Owners are 0 and no user or group names are written.
 */
export function tarHeaderBlocks(
  path: string,
  entry: HeaderEntry,
  size: number,
  mtime: Date,
): Buffer[] {
  const data: HeaderData = {
    path: entry.type === "directory" ? `${path}/` : path,
    mode: entry.type === "symlink" ? 0o777 : entry.mode,
    uid: 0,
    gid: 0,
    size: entry.type === "file" ? size : 0,
    mtime,
    type: TAR_TYPES[entry.type],
    linkpath: entry.type === "symlink" ? entry.target : undefined,
  };
  const header = new Header(data);
  // Long paths or link targets do not fit the ustar fields: a pax header carries them.
  const blocks: Buffer[] = header.encode() ? [new Pax(data).encode()] : [];
  blocks.push(header.block as Buffer);
  return blocks;
}
