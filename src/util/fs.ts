import { randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import { lstat, mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { stableJson } from "./json.js";

export { stableJson } from "./json.js";

export interface AtomicWriteOptions {
  /** Create missing parent directories. Off for files inside a sandbox's directory, so a
   * late write can never bring back a directory that was just deleted. @default true */
  createParent?: boolean;
}

/** Writes a file so readers see either the old or the new content, never a torn one. */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
  options: AtomicWriteOptions = {},
) {
  if (options.createParent !== false) await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  const handle = await open(temp, "w", mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

export async function writeJsonAtomic(
  path: string,
  value: unknown,
  mode = 0o644,
  options: AtomicWriteOptions = {},
) {
  await writeFileAtomic(path, `${stableJson(value)}\n`, mode, options);
}

export async function readJsonIfExists<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as T;
  } catch (error) {
    if (isErrno(error, "ENOENT")) return undefined;
    throw error;
  }
}

export function isErrno(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await open(path, "r").then((h) => h.close());
    return true;
  } catch {
    return false;
  }
}

/** What {@link lstatBeneath} found at a path, checked one component at a time. */
export type BeneathEntry =
  | { found: true; path: string; stats: Stats }
  | {
      found: false;
      /** The first component (relative, "/"-joined) that stopped the walk. */
      at: string;
      /** Nothing there, a symlink, or something other than a directory above the end. */
      problem: "missing" | "symlink" | "not_directory";
    };

/**
 * lstat of `relative` (a "/"-separated path without `..`) under `root`, without following
 * any link on the way: every component above the last must be a real directory. The last
 * one may be anything, a symlink included (it is lstat'ed, not followed); the caller says
 * what it accepts. For trees that came from an untrusted source, where a plain `stat` of
 * `root/a/b` would go wherever a link `a` points on the host.
 */
export async function lstatBeneath(root: string, relative: string): Promise<BeneathEntry> {
  const parts = relative.split("/").filter((part) => part !== "" && part !== ".");
  if (parts.includes("..")) throw new Error(`lstatBeneath: ${relative} has a ".." component`);
  let path = root;
  let stats = await lstat(root);
  for (const [index, part] of parts.entries()) {
    const at = parts.slice(0, index).join("/");
    if (stats.isSymbolicLink()) return { found: false, at, problem: "symlink" };
    if (!stats.isDirectory()) return { found: false, at, problem: "not_directory" };
    path = join(path, part);
    try {
      stats = await lstat(path);
    } catch (error) {
      if (isErrno(error, "ENOENT"))
        return { found: false, at: parts.slice(0, index + 1).join("/"), problem: "missing" };
      throw error;
    }
  }
  return { found: true, path, stats };
}
