/**
 * Counting, copying and moving host trees that came out of a guest. Such a tree may hold
 * symlinks to anywhere on the host: they are data, so nothing here ever follows one (lstat,
 * O_NOFOLLOW, links recreated as links).
 */
import { constants, lstatSync, readdirSync, readlinkSync, symlinkSync } from "node:fs";
import { chmod, lstat, mkdir, open, rename, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { isErrno } from "../util/fs.js";

/** How many entries a walk visits between turns of the event loop. */
const ENTRIES_PER_TURN = 1000;
/** Group/other write and the set-id bits never survive a copy (a umask of 022). */
const KEPT_MODE_BITS = 0o755;

/**
 * Entries and bytes of files under `path`. The top is followed if it is a link: it is a
 * path a user named, or one the caller has already checked with `lstatBeneath`. Below
 * it a symlink is one entry, never followed.
 */
export async function countTree(path: string): Promise<{ entries: number; bytes: number }> {
  const top = await stat(path);
  if (!top.isDirectory()) return { entries: 1, bytes: top.size };
  let entries = 0;
  let bytes = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      const stats = lstatSync(full);
      entries += 1;
      if (entries % ENTRIES_PER_TURN === 0) await new Promise((done) => setImmediate(done));
      if (stats.isFile()) bytes += stats.size;
      else if (stats.isDirectory()) await walk(full);
    }
  };
  await walk(path);
  return { entries, bytes };
}

/**
 * Copies a file, symlink or directory tree to `dest`, which must not exist. Links are
 * recreated as links with the same target, files are opened with O_NOFOLLOW and created
 * with O_EXCL, modes lose group/other write and set-id bits, mtimes are kept.
 */
export async function copyTree(source: string, dest: string): Promise<void> {
  const stats = await lstat(source);
  if (stats.isSymbolicLink()) return symlinkSync(readlinkSync(source), dest);
  if (stats.isDirectory()) {
    await mkdir(dest, { mode: 0o700 });
    for (const name of readdirSync(source)) await copyTree(join(source, name), join(dest, name));
  } else if (stats.isFile()) {
    await copyFileNoFollow(source, dest);
  } else {
    throw new Error(`${source} is not a file, directory or symlink; it was not copied`);
  }
  await chmod(dest, (stats.mode | 0o600) & KEPT_MODE_BITS);
  await utimes(dest, stats.atime, stats.mtime);
}

async function copyFileNoFollow(source: string, dest: string): Promise<void> {
  const input = await open(source, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    const output = await open(dest, flags, 0o600);
    await pipeline(input.createReadStream({ autoClose: false }), output.createWriteStream());
  } finally {
    await input.close();
  }
}

/**
 * Puts `source` (a file, directory or symlink) at `output`: a rename, or a no-follow copy
 * when they are on different file systems. An existing `output` is moved aside first and
 * only removed once the new one is in place, so a failure never loses what was there.
 */
export async function replacePath(source: string, output: string): Promise<void> {
  const aside = (await lstat(output).catch(() => undefined))
    ? `${output}.pyro-old-${process.pid}`
    : undefined;
  if (aside) await rename(output, aside);
  try {
    await moveTree(source, output);
  } catch (error) {
    if (aside) await rename(aside, output);
    throw error;
  }
  if (aside) await rm(aside, { recursive: true, force: true });
}

async function moveTree(source: string, dest: string): Promise<void> {
  try {
    await rename(source, dest);
  } catch (error) {
    if (!isErrno(error, "EXDEV")) throw error;
    try {
      await copyTree(source, dest);
    } catch (copyError) {
      await rm(dest, { recursive: true, force: true });
      throw copyError;
    }
  }
}
