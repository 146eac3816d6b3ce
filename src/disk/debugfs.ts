/**
 * debugfs (e2fsprogs) as a reader of ext4 images that pyro does not trust: a workspace's
 * state disk is written by its guest. Nothing here mounts an image or follows a link, every
 * output is read with a cap, and the parsers accept exactly the shapes debugfs prints.
 */
import { spawn } from "node:child_process";
import { open } from "node:fs/promises";
import { PyroError } from "../contract/errors.js";

/** What one batch of commands may print: listings of huge directories stay far below. */
export const MAX_BATCH_OUTPUT_BYTES = 64 << 20;
/**
 * How long one debugfs process may take. A damaged or crafted image must not keep the
 * workspace's state lock forever; dumping file contents gets longer (it writes them all).
 */
export const DEBUGFS_TIMEOUT_MS = 5 * 60_000;
export const DEBUGFS_DUMP_TIMEOUT_MS = 30 * 60_000;
/** Linux's PATH_MAX: no symlink target a guest's kernel accepts is longer. */
export const MAX_LINK_TARGET_BYTES = 4095;
/** Fast symlinks keep their target in the inode: shorter than 60 bytes (ext4's i_block). */
const FAST_LINK_MAX_BYTES = 59;

/** One directory entry as `ls -p` prints it; `name` is decoded from the raw bytes. */
export interface RawEntry {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  name: string;
  /** Bytes for files and links; 0 for directories (ls -p leaves it empty). */
  size: number;
}

const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
export const fileType = (mode: number) => mode & S_IFMT;

/** debugfs's own environment: never a pager, whatever the caller's terminal says. */
const DEBUGFS_ENV = { ...process.env, DEBUGFS_PAGER: "__none__", PAGER: "__none__" };

function malformed(image: string, what: string): PyroError {
  return new PyroError(
    "guest_error",
    `the disk ${image} holds something pyro cannot read safely (${what}); its guest may have written a damaged or crafted file system`,
  );
}

/**
 * Runs `commands` in one read-only debugfs process (commands on stdin, so no name reaches
 * an argv) and returns stdout as a byte-exact latin1 string; more than `maxBytes` of
 * output kills the process and fails.
 */
export async function debugfsBatch(
  image: string,
  commands: readonly string[],
  options: { maxBytes?: number; timeoutMs?: number } = {},
): Promise<string> {
  if (commands.length === 0) return "";
  const maxBytes = options.maxBytes ?? MAX_BATCH_OUTPUT_BYTES;
  const { stdout } = await runDebugfs(
    ["-f", "-", image],
    `${commands.join("\n")}\n`,
    maxBytes,
    options.timeoutMs ?? DEBUGFS_TIMEOUT_MS,
  );
  if (stdout.length > maxBytes) {
    throw malformed(image, `more than ${maxBytes >> 20} MiB of metadata in one batch`);
  }
  return stdout.toString("latin1");
}

/**
 * The first `maxBytes` of the file at inode `ino` (debugfs `cat`), and whether the process
 * was stopped early. Reading stops at `maxBytes` whatever the inode claims.
 */
export async function readInodeBytes(image: string, ino: number, maxBytes: number) {
  const { stdout } = await runDebugfs(
    ["-R", `cat <${ino}>`, image],
    "",
    maxBytes,
    DEBUGFS_TIMEOUT_MS,
  );
  return stdout.subarray(0, maxBytes);
}

function runDebugfs(args: string[], input: string, maxBytes: number, timeoutMs: number) {
  return new Promise<{ stdout: Buffer }>((resolve, reject) => {
    const child = spawn("debugfs", args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: DEBUGFS_ENV,
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    const chunks: Buffer[] = [];
    let length = 0;
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      if (length > maxBytes) return;
      chunks.push(chunk);
      length += chunk.length;
      // Past the cap nothing more is wanted: stop the reader instead of draining it.
      if (length > maxBytes) child.kill("SIGKILL");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString("utf8");
    });
    child.stdin.on("error", () => {}); // a killed debugfs closes its stdin early
    child.stdin.end(input);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(
        new PyroError(
          "unavailable",
          `cannot run debugfs (${error.message}); install e2fsprogs (scripts/setup.sh does)`,
        ),
      );
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(
          new PyroError(
            "timeout",
            `debugfs did not finish reading ${args[args.length - 1]} within ${timeoutMs / 1000} s; its file system may be damaged`,
          ),
        );
        return;
      }
      if (code !== 0 && !(signal === "SIGKILL" && length > maxBytes)) {
        reject(new PyroError("internal", `debugfs failed (${code ?? signal}): ${stderr.trim()}`));
        return;
      }
      resolve({ stdout: Buffer.concat(chunks) });
    });
  });
}

const RECORD = /\/(\d+)\/([0-7]{1,7})\/(\d+)\/(\d+)\/([^/]*)\/(\d*)\/\n/y;

/**
 * Parses the output of `ls -p <ino>` for each of `inodes`, in order. A name may hold any
 * byte but `/` and NUL (newlines included), so records are matched one after another from
 * the start, never by lines: a name cannot fake a record or a command boundary. `.` and
 * `..` are dropped. A directory debugfs cannot list yields no entries.
 */
export function parseListings(
  image: string,
  output: string,
  inodes: readonly number[],
): Map<number, RawEntry[]> {
  const listings = new Map<number, RawEntry[]>();
  let at = 0;
  for (const ino of inodes) {
    const header = `debugfs: ls -p <${ino}>\n`;
    if (!output.startsWith(header, at)) throw malformed(image, `no listing of inode ${ino}`);
    at += header.length;
    const entries: RawEntry[] = [];
    for (;;) {
      RECORD.lastIndex = at;
      const match = RECORD.exec(output);
      if (!match) break;
      at = RECORD.lastIndex;
      const [, inoText, modeText, uid, gid, rawName, size] = match;
      const name = Buffer.from(rawName!, "latin1").toString("utf8");
      if (name === "." || name === ".." || name === "" || name.includes("\0")) continue;
      entries.push({
        ino: Number(inoText),
        mode: Number.parseInt(modeText!, 8),
        uid: Number(uid),
        gid: Number(gid),
        name,
        size: size ? Number(size) : 0,
      });
    }
    // A listing ends with an empty line; anything else there is not debugfs's shape.
    if (output[at] === "\n") at += 1;
    else if (at < output.length && !output.startsWith("debugfs: ", at)) {
      throw malformed(image, `an unreadable entry in directory inode ${ino}`);
    }
    listings.set(ino, entries);
  }
  return listings;
}

/**
 * Splits batch output into one block per command, in order. Only for commands whose output
 * carries no raw names (stat, ea_list): their guest-chosen text is escaped by debugfs,
 * except a fast link's target, which is read by its known length.
 */
export function splitBlocks(image: string, output: string, commands: readonly string[]): string[] {
  const starts: number[] = [];
  let at = 0;
  for (const command of commands) {
    const found = output.indexOf(`debugfs: ${command}\n`, at);
    if (found < 0) throw malformed(image, `no output for "${command}"`);
    starts.push(found);
    at = found + command.length + 10;
  }
  return starts.map((start, i) =>
    output.slice(start + commands[i]!.length + 10, starts[i + 1] ?? output.length),
  );
}

/** Major and minor number of a device inode, from its `stat` block. */
export function deviceNumbers(block: string): { major: number; minor: number } | undefined {
  const match = /Device major\/minor number: (\d+):(\d+)/.exec(block);
  return match ? { major: Number(match[1]), minor: Number(match[2]) } : undefined;
}

/** A fast symlink's target from its `stat` block: exactly `size` bytes inside the quotes. */
export function fastLinkTarget(block: string, size: number): string | undefined {
  const marker = 'Fast link dest: "';
  const start = block.indexOf(marker);
  if (start < 0 || size > FAST_LINK_MAX_BYTES) return undefined;
  const target = block.slice(start + marker.length, start + marker.length + size);
  if (block[start + marker.length + size] !== '"') return undefined;
  return Buffer.from(target, "latin1").toString("utf8");
}

/** Overlayfs marks a directory that hides the lower one with trusted.overlay.opaque = y. */
export function isOpaqueBlock(block: string): boolean {
  return /^ {2}trusted\.overlay\.opaque \(1\) = "y"$/m.test(block);
}

/**
 * True when the image's superblock says its journal holds transactions not yet written to
 * their place (the guest powers off without unmounting): debugfs does not replay journals.
 */
export async function needsJournalRecovery(image: string): Promise<boolean> {
  const handle = await open(image, "r");
  try {
    const superblock = Buffer.alloc(1024);
    await handle.read(superblock, 0, 1024, 1024);
    const EXT4_MAGIC = 0xef53;
    const INCOMPAT_RECOVER = 0x4;
    if (superblock.readUInt16LE(0x38) !== EXT4_MAGIC) throw malformed(image, "not ext4");
    return (superblock.readUInt32LE(0x60) & INCOMPAT_RECOVER) !== 0;
  } finally {
    await handle.close();
  }
}

/**
 * Targets of slow symlinks from a batch of `cat <ino>` commands: each block is exactly the
 * link's `size` bytes, so they are read by length, never by searching.
 */
export function parseCatBlocks(
  image: string,
  output: string,
  links: readonly { ino: number; size: number }[],
): Map<number, string> {
  const targets = new Map<number, string>();
  let at = 0;
  for (const { ino, size } of links) {
    const header = `debugfs: cat <${ino}>\n`;
    if (!output.startsWith(header, at) || output.length < at + header.length + size) {
      throw malformed(image, `no target for symlink inode ${ino}`);
    }
    at += header.length;
    targets.set(ino, Buffer.from(output.slice(at, at + size), "latin1").toString("utf8"));
    at += size;
  }
  return targets;
}
