import type { Stats } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { PyroError } from "../contract/errors.js";
import type { ChannelClient } from "../guest/client.js";
import { makeDirectory } from "../guest/files.js";
import { lstatBeneath } from "../util/fs.js";
import { copyArchive, DEFAULT_ARCHIVE_LIMITS, extractArchive } from "../workspace/archive.js";
import { guestPath, WORKSPACE_ROOT } from "../workspace/paths.js";

/**
 * Moving trees in and out of a running workspace. The guest's own `tar` does the guest
 * side; everything that comes back is an untrusted archive, extracted with bounds.
 */

/** Largest archive pulled out of a guest in one go (the agent's per-stream bound). */
const MAX_GUEST_ARCHIVE_BYTES = 1 << 30;
const ARCHIVE_TIMEOUT_MS = 10 * 60_000;
/**
 * Archive bytes the host may hold while it checks and writes them: the agent sends as
 * fast as the guest's tar reads, and a disk that falls this far behind fails the copy
 * rather than letting the host's memory grow.
 */
const MAX_BUFFERED_ARCHIVE_BYTES = 256 << 20;

/** Unpacks a tar (from the host) under `destRelative` in /workspace. */
export async function pushArchive(client: ChannelClient, archive: Buffer, destRelative: string) {
  await makeDirectory(client, { root: WORKSPACE_ROOT, path: destRelative || "." });
  const result = await client.exec(
    {
      // Paths reach the guest only as the exec's cwd, never in argv: the agent confines a
      // cwd (under the host-process driver it prefixes its root), but a `-C /workspace`
      // would be the host's own /workspace there.
      argv: ["tar", "-x", "-f", "-", "-C", "."],
      cwd: guestPath(destRelative),
      timeout_ms: ARCHIVE_TIMEOUT_MS,
      max_output_bytes: 64 * 1024,
      sync: true,
    },
    {},
    archive,
  );
  if (result.exit_code !== 0) {
    throw new PyroError(
      "guest_error",
      `unpacking in the guest failed: ${result.stderr.toString("utf8").trim()}`,
    );
  }
}

export interface CapturedTree {
  /** A host temp directory holding the captured files (under `root`). */
  root: string;
  cleanup: () => Promise<void>;
}

/**
 * Copies `relative` (a file or directory under /workspace, "" for all of it) out of the
 * guest into a fresh host temp directory, as `root/<relative>`. The guest's archive is
 * checked and unpacked as it streams: no copy of it lands on the host first.
 */
export async function captureFromGuest(
  client: ChannelClient,
  relative: string,
): Promise<CapturedTree> {
  return captureInto(client, { argv: ["tar", "-c", "-f", "-", "--", relative || "."] }, relative);
}

/**
 * Copies the files at `paths` (relative to /workspace) out of the guest, as
 * `root/<path>`. A path that is gone by the time the guest's tar looks is left out.
 */
export async function captureFilesFromGuest(
  client: ChannelClient,
  paths: string[],
): Promise<CapturedTree> {
  // Names go in on stdin, NUL-separated and verbatim: a name such as "-C" or "--x" is a
  // name, never an option.
  const argv = ["tar", "-c", "-f", "-", "--no-recursion", "--ignore-failed-read"];
  argv.push("--null", "--verbatim-files-from", "-T", "-");
  const stdin = Buffer.from(paths.map((path) => `${path}\0`).join(""));
  return captureInto(client, { argv, stdin }, "");
}

async function captureInto(
  client: ChannelClient,
  tar: { argv: string[]; stdin?: Buffer },
  relative: string,
): Promise<CapturedTree> {
  const work = await mkdtemp(join(tmpdir(), "pyro-capture-"));
  const cleanup = () => rm(work, { recursive: true, force: true });
  try {
    const root = join(work, "tree");
    await mkdir(root, { mode: 0o700 });
    // Never compressed: the guest's own tar was asked for a plain one, and an inflated
    // stream would be a bomb the guest gets to size.
    await streamGuestArchive(client, tar, relative, (archive) =>
      extractArchive(archive, root, DEFAULT_ARCHIVE_LIMITS, { origin: "guest", gzip: false }),
    );
    return { root, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/**
 * Writes /workspace as a checked, normalised tar to `target` (a snapshot), streamed from
 * the guest's tar through the untrusted-archive checks straight into the file. The file
 * appears only when the whole archive passed.
 */
export async function snapshotFromGuest(client: ChannelClient, target: string): Promise<void> {
  await streamGuestArchive(client, { argv: ["tar", "-c", "-f", "-", "--", "."] }, "", (archive) =>
    copyArchive(archive, target, DEFAULT_ARCHIVE_LIMITS, { origin: "guest", gzip: false }),
  );
}

/**
 * Runs the guest's tar in /workspace and hands its stdout to `consume` as a stream while
 * it arrives. If `consume` refuses the archive, the tar is killed and that refusal is
 * the error; otherwise a failed tar is.
 */
async function streamGuestArchive<T>(
  client: ChannelClient,
  tar: { argv: string[]; stdin?: Buffer },
  relative: string,
  consume: (archive: Readable) => Promise<T>,
): Promise<T> {
  const archive = new PassThrough();
  const abort = new AbortController();
  let refused = false;
  const consumed = consume(archive).catch((error: unknown) => {
    refused = true;
    abort.abort();
    throw error;
  });
  consumed.catch(() => {}); // awaited below; this only keeps it from counting as unhandled
  const onStdout = (chunk: Buffer) => {
    if (archive.destroyed) return;
    // The agent cannot be paused, so the host's side is bounded instead of unbounded.
    if (archive.writableLength + chunk.length > MAX_BUFFERED_ARCHIVE_BYTES) {
      archive.destroy(
        new PyroError("unavailable", "the host fell behind the guest's archive; try again"),
      );
      return;
    }
    archive.write(chunk);
  };
  let result: Awaited<ReturnType<ChannelClient["exec"]>>;
  try {
    result = await client.exec(
      {
        // Relative to the cwd, for the reason given in pushArchive.
        argv: tar.argv,
        cwd: WORKSPACE_ROOT,
        timeout_ms: ARCHIVE_TIMEOUT_MS,
        max_output_bytes: MAX_GUEST_ARCHIVE_BYTES,
      },
      { collectOutput: false, onStdout, signal: abort.signal },
      tar.stdin,
    );
  } catch (error) {
    archive.destroy();
    await consumed.catch(() => {});
    throw error;
  }
  if (refused) return consumed;
  const failure = tarFailure(result, relative);
  if (failure) {
    archive.destroy();
    await consumed.catch(() => {});
    throw failure;
  }
  archive.end();
  return consumed;
}

function tarFailure(
  result: { exit_code: number | null; stdout_truncated: boolean; stderr: Buffer },
  relative: string,
): PyroError | undefined {
  if (result.stdout_truncated) {
    return new PyroError(
      "unavailable",
      `${guestPath(relative)} is larger than ${MAX_GUEST_ARCHIVE_BYTES >> 30} GiB as an archive; export a smaller path`,
    );
  }
  if (result.exit_code === 0) return undefined;
  const message = result.stderr.toString("utf8").trim();
  const missing = /No such file|Cannot stat/.test(message);
  return new PyroError(
    missing ? "not_found" : "guest_error",
    missing ? `${guestPath(relative)} does not exist` : `archiving in the guest failed: ${message}`,
  );
}

/**
 * The captured entry for `relative`, found without following any link of the captured
 * tree: a guest's archive may say `proj -> /home/user`, and a plain lookup of
 * `proj/src/main.py` would then reach (and an export would move) the host's own file.
 *
 * @throws PyroError `guest_error` when a component above the entry is a symlink or a file,
 *   or the archive does not hold the entry; `invalid_argument` when the entry itself is a
 *   symlink (it is exported only as part of a directory).
 */
export async function capturedEntry(
  captured: CapturedTree,
  relative: string,
): Promise<{ path: string; stats: Stats }> {
  const entry = await lstatBeneath(captured.root, relative);
  if (entry.found && entry.stats.isSymbolicLink()) {
    throw new PyroError(
      "invalid_argument",
      `${guestPath(relative)} is a symlink; export the path it points to, or a directory that holds it`,
    );
  }
  if (entry.found) return entry;
  const where = guestPath(entry.at);
  const problem = {
    missing: `does not hold ${where}`,
    symlink: `has a symlink at ${where}, where a directory was expected`,
    not_directory: `has a file at ${where}, where a directory was expected`,
  }[entry.problem];
  throw new PyroError(
    "guest_error",
    `the archive from the guest ${problem} (asked for ${guestPath(relative)}); nothing was exported`,
  );
}
