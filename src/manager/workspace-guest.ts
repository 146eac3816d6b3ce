import { createWriteStream, type Stats } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PyroError } from "../contract/errors.js";
import type { ChannelClient } from "../guest/client.js";
import { makeDirectory } from "../guest/files.js";
import { lstatBeneath } from "../util/fs.js";
import { DEFAULT_ARCHIVE_LIMITS, extractArchive } from "../workspace/archive.js";
import { guestPath, WORKSPACE_ROOT } from "../workspace/paths.js";

/**
 * Moving trees in and out of a running workspace. The guest's own `tar` does the guest
 * side; everything that comes back is an untrusted archive, extracted with bounds.
 */

/** Largest archive pulled out of a guest in one go (the agent's per-stream bound). */
const MAX_GUEST_ARCHIVE_BYTES = 1 << 30;
const ARCHIVE_TIMEOUT_MS = 10 * 60_000;

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
 * guest into a fresh host temp directory, as `root/<relative>`.
 */
export async function captureFromGuest(
  client: ChannelClient,
  relative: string,
): Promise<CapturedTree> {
  const work = await mkdtemp(join(tmpdir(), "pyro-capture-"));
  const cleanup = () => rm(work, { recursive: true, force: true });
  try {
    const archivePath = join(work, "capture.tar");
    const sink = createWriteStream(archivePath, { mode: 0o600 });
    const result = await client.exec(
      {
        // Relative to the cwd, for the reason given in pushArchive.
        argv: ["tar", "-c", "-f", "-", "--", relative || "."],
        cwd: WORKSPACE_ROOT,
        timeout_ms: ARCHIVE_TIMEOUT_MS,
        max_output_bytes: MAX_GUEST_ARCHIVE_BYTES,
      },
      { collectOutput: false, onStdout: (chunk) => sink.write(chunk) },
    );
    await new Promise<void>((resolve, reject) =>
      sink.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
    if (result.stdout_truncated) {
      throw new PyroError(
        "unavailable",
        `${guestPath(relative)} is larger than ${MAX_GUEST_ARCHIVE_BYTES >> 30} GiB as an archive; export a smaller path`,
      );
    }
    if (result.exit_code !== 0) {
      const message = result.stderr.toString("utf8").trim();
      const missing = /No such file|Cannot stat/.test(message);
      throw new PyroError(
        missing ? "not_found" : "guest_error",
        missing
          ? `${guestPath(relative)} does not exist`
          : `archiving in the guest failed: ${message}`,
      );
    }
    const root = join(work, "tree");
    await mkdir(root, { mode: 0o700 });
    // Never compressed: the guest's own tar was asked for a plain one, and an inflated
    // stream would be a bomb the guest gets to size.
    await extractArchive(archivePath, root, DEFAULT_ARCHIVE_LIMITS, {
      origin: "guest",
      gzip: false,
    });
    await rm(archivePath, { force: true });
    return { root, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
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
