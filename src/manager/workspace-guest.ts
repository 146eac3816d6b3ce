import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PyroError } from "../contract/errors.js";
import type { ChannelClient } from "../guest/client.js";
import { makeDirectory } from "../guest/files.js";
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
      argv: ["tar", "-x", "-f", "-", "-C", guestPath(destRelative)],
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
        argv: ["tar", "-c", "-f", "-", "-C", WORKSPACE_ROOT, "--", relative || "."],
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
    await import("node:fs/promises").then((fs) => fs.mkdir(root));
    await extractArchive(archivePath, root, DEFAULT_ARCHIVE_LIMITS, { origin: "guest" });
    await rm(archivePath, { force: true });
    return { root, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
