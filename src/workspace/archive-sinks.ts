/**
 * Where a checked archive's entries go (archive.ts decides what is accepted): unpacked
 * into a directory, or copied as a normalised tar into a file.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  futimesSync,
  lstatSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { chmod, readdir, rename, rm, utimes } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";
import type { ReadEntry } from "tar";
import { isErrno } from "../util/fs.js";
import { tarHeaderBlocks } from "./pack.js";

export type Kind = "file" | "directory" | "symlink";

/** An accepted entry: its cleaned path, what it is, and whether it replaces an earlier one. */
export interface EntryPlan {
  path: string;
  kind: Kind;
  replaces: boolean;
}

export interface EntrySink {
  /** Takes one accepted entry, consuming its body. */
  write(entry: ReadEntry, plan: EntryPlan): Promise<void>;
  /** Every entry was accepted and written. */
  finish(): Promise<void>;
  /** The archive was refused: remove whatever was written. */
  discard(): Promise<void>;
}

/**
 * Permission bits an extracted file or directory may keep: no set-id or sticky bit, and
 * no write for group or others (what a umask of 022 gives), since a guest's modes must
 * not make a host file writable by every user. The owner always gets rw (and x on
 * directories) so the tree can be read and removed.
 */
const KEPT_MODE_BITS = 0o755;
export const keptFileMode = (mode = 0o644) => (mode & KEPT_MODE_BITS) | 0o600;
export const keptDirectoryMode = (mode = 0o755) => (mode | 0o700) & KEPT_MODE_BITS;

/** Unpacks into `dest`, an existing empty directory. */
export class DirectorySink implements EntrySink {
  private readonly directories: { path: string; mode: number; mtime?: Date }[] = [];
  /** Directories already created under dest (only this extraction writes there). */
  private readonly madeDirectories = new Set<string>();

  constructor(private readonly dest: string) {}

  async write(entry: ReadEntry, plan: EntryPlan): Promise<void> {
    const full = join(this.dest, plan.path);
    this.makeParents(plan.path);
    if (plan.replaces) rmSync(full, { force: true }); // a file or symlink, never a directory
    if (plan.kind === "directory") {
      this.makeDirectoryOnce(plan.path);
      this.directories.push({
        path: full,
        mode: keptDirectoryMode(entry.mode),
        mtime: entry.mtime,
      });
      entry.resume();
    } else if (plan.kind === "symlink") {
      symlinkSync(entry.linkpath as string, full);
      entry.resume();
    } else {
      await writeEntryFile(full, entry);
    }
  }

  /** Directory modes go last, so a read-only directory could still be filled. */
  async finish(): Promise<void> {
    for (const { path, mode, mtime } of this.directories.reverse()) {
      await chmod(path, mode);
      if (mtime) await utimes(path, mtime, mtime);
    }
  }

  async discard(): Promise<void> {
    for (const name of await readdir(this.dest)) {
      await rm(join(this.dest, name), { recursive: true, force: true });
    }
  }

  private makeParents(path: string): void {
    const parts = path.split("/");
    for (let depth = 1; depth < parts.length; depth++) {
      this.makeDirectoryOnce(parts.slice(0, depth).join("/"));
    }
  }

  private makeDirectoryOnce(path: string): void {
    if (this.madeDirectories.has(path)) return;
    makeDirectory(join(this.dest, path));
    this.madeDirectories.add(path);
  }
}

/**
 * Writes the entries as a plain tar to a temp file beside `dest` and renames it over
 * `dest` once the archive is complete. Headers are written fresh (owners 0, no user or
 * group names, extraction's modes), so only what the checks saw reaches the file.
 */
export class TarFileSink implements EntrySink {
  private constructor(
    private readonly dest: string,
    private readonly temp: string,
    private fd: number | undefined,
  ) {}

  static async create(dest: string): Promise<TarFileSink> {
    const temp = join(
      dirname(dest),
      `.${basename(dest)}.${randomBytes(6).toString("hex")}.partial`,
    );
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    return new TarFileSink(dest, temp, openSync(temp, flags, 0o600));
  }

  async write(entry: ReadEntry, plan: EntryPlan): Promise<void> {
    const fd = this.fd as number;
    const mtime = entry.mtime ?? new Date();
    if (plan.kind !== "file") {
      const header =
        plan.kind === "directory"
          ? { type: "directory" as const, mode: keptDirectoryMode(entry.mode) }
          : { type: "symlink" as const, target: entry.linkpath as string };
      for (const block of tarHeaderBlocks(plan.path, header, 0, mtime)) writeFileSync(fd, block);
      entry.resume();
      return;
    }
    const header = { type: "file" as const, mode: keptFileMode(entry.mode) };
    for (const block of tarHeaderBlocks(plan.path, header, entry.size, mtime))
      writeFileSync(fd, block);
    let written = 0;
    for await (const chunk of entry as AsyncIterable<Buffer>) {
      writeFileSync(fd, chunk);
      written += chunk.length;
    }
    // The parser hands over exactly the header's size; a short body is its error to report.
    if (written % 512 !== 0) writeFileSync(fd, Buffer.alloc(512 - (written % 512)));
  }

  async finish(): Promise<void> {
    const fd = this.fd as number;
    writeFileSync(fd, Buffer.alloc(1024)); // end of archive: two zero blocks
    fsyncSync(fd);
    closeSync(fd);
    this.fd = undefined;
    await rename(this.temp, this.dest);
  }

  async discard(): Promise<void> {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    await rm(this.temp, { force: true });
  }
}

/**
 * The file operations here are synchronous on purpose: each is one short syscall, while
 * an awaited fs promise costs a thread-pool round trip (~0.1 ms), which made a 100k-file
 * workspace take over a minute to unpack. The event loop still turns between chunks.
 */
async function writeEntryFile(path: string, entry: ReadEntry): Promise<void> {
  // O_EXCL|O_NOFOLLOW: the path was checked to be free; never follow or reuse what is there.
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const fd = openSync(path, flags, 0o600);
  try {
    for await (const chunk of entry as AsyncIterable<Buffer>) writeFileSync(fd, chunk);
    fchmodSync(fd, keptFileMode(entry.mode));
    if (entry.mtime) futimesSync(fd, entry.mtime, entry.mtime);
  } finally {
    closeSync(fd);
  }
}

/** mkdir that accepts an existing directory and nothing else (a symlink there is an error). */
function makeDirectory(path: string): void {
  try {
    mkdirSync(path, 0o700);
  } catch (error) {
    if (!isErrno(error, "EEXIST") || !lstatSync(path).isDirectory()) throw error;
  }
}
