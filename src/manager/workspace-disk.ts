import { stat } from "node:fs/promises";
import { resolve as resolveHostPath } from "node:path";
import type { z } from "zod";
import {
  exportWorkspaceDisk,
  listWorkspaceDisk,
  MAX_DISK_LIST_ENTRIES,
  readWorkspaceDisk,
} from "../contract/disk.js";
import { PyroError } from "../contract/errors.js";
import { parseParams } from "../contract/validate.js";
import { DEBUGFS_TIMEOUT_MS, needsJournalRecovery, readInodeBytes } from "../disk/debugfs.js";
import { exportImage } from "../disk/export.js";
import { MergedDisk, normalizeDiskPath, walkDisk } from "../disk/merged.js";
import { bootArtifacts } from "../env/environments.js";
import { vmFiles, type ShimLaunchConfig } from "../shim/launch.js";
import { readJsonIfExists } from "../util/fs.js";
import { liveState } from "./records.js";
import { runCommand } from "../util/process.js";
import type { ProgressSink } from "../util/progress.js";
import { tryDecodeUtf8 } from "../workspace/text.js";
import { checkOutputPath } from "./workspace-content.js";
import { workspaceDir, workspaceStore, type WorkspaceRecord } from "./workspace-store.js";

/** Everything an export may walk: far above a Debian image (~20k entries) plus a project. */
const MAX_EXPORT_ENTRIES = 2_000_000;

/**
 * The offline disk tools: a stopped workspace's merged root, read from its state disk and
 * its environment's image on the host (src/disk/), under the workspace's state lock so no
 * boot can start while the disk is read.
 */
export class WorkspaceDisk {
  constructor(private readonly progress: ProgressSink) {}

  async list(input: z.input<typeof listWorkspaceDisk.params>) {
    const params = parseParams(listWorkspaceDisk.params, input);
    const path = normalizeDiskPath(params.path);
    return this.withStoppedDisk(params.workspace_id, async (disk) => {
      const start = await disk.resolve(path);
      if (!start.dir) {
        return {
          workspace_id: params.workspace_id,
          path,
          recursive: params.recursive,
          entries: [start.entry],
          truncated: false,
        };
      }
      const walked = await walkDisk(disk, start, {
        recursive: params.recursive,
        maxEntries: MAX_DISK_LIST_ENTRIES,
      });
      return {
        workspace_id: params.workspace_id,
        path,
        recursive: params.recursive,
        entries: walked.nodes.map((n) => n.entry),
        truncated: walked.truncated,
      };
    });
  }

  async read(input: z.input<typeof readWorkspaceDisk.params>) {
    const params = parseParams(readWorkspaceDisk.params, input);
    const path = normalizeDiskPath(params.path);
    return this.withStoppedDisk(params.workspace_id, async (disk) => {
      const node = await disk.resolve(path);
      if (node.entry.artifact_type !== "file") {
        const hint =
          node.entry.artifact_type === "symlink"
            ? `a symlink to ${JSON.stringify(node.entry.link_target)}; read its target instead`
            : node.entry.artifact_type === "directory"
              ? "a directory; list it with workspace disk list"
              : "not a regular file";
        throw new PyroError("invalid_argument", `${path} is ${hint}`, { details: { path } });
      }
      const image = node.layer === "upper" ? disk.stateImage : disk.baseImage;
      const bytes = await readInodeBytes(image, node.ino, params.max_bytes);
      const truncated = node.entry.size_bytes > bytes.length;
      return {
        workspace_id: params.workspace_id,
        path,
        size_bytes: node.entry.size_bytes,
        ...encodeContent(bytes, truncated),
        truncated,
      };
    });
  }

  async export(input: z.input<typeof exportWorkspaceDisk.params>) {
    const params = parseParams(exportWorkspaceDisk.params, input);
    const output = resolveHostPath(params.output_path);
    await checkOutputPath(output, params.overwrite);
    return this.withStoppedDisk(params.workspace_id, async (disk) => {
      this.progress({
        scope: "disk",
        phase: "walk",
        fields: { workspace_id: params.workspace_id },
      });
      const root = await disk.resolve("/");
      const walked = await walkDisk(disk, root, {
        recursive: true,
        maxEntries: MAX_EXPORT_ENTRIES,
      });
      if (walked.truncated) {
        throw new PyroError(
          "guest_error",
          `the workspace's disk has more than ${MAX_EXPORT_ENTRIES} entries, a directory loop or a tree deeper than pyro walks; it cannot be exported whole`,
        );
      }
      this.progress({
        scope: "disk",
        phase: "image",
        fields: { workspace_id: params.workspace_id },
      });
      const summary = await exportImage(disk, walked.nodes, output);
      return { workspace_id: params.workspace_id, output_path: output, ...summary };
    });
  }

  /**
   * Runs `fn` on the merged disk of a workspace that is not running, holding its state
   * lock. A started workspace is refused with `conflict` saying to stop it first.
   */
  private async withStoppedDisk<T>(id: string, fn: (disk: MergedDisk) => Promise<T>): Promise<T> {
    await workspaceStore.load(id);
    return workspaceStore.withLock(id, async () => {
      const record = await workspaceStore.reconciled(id);
      const dir = workspaceDir(id);
      // Named states, not "anything but started": a state added later (paused) keeps its
      // disk in use and must be refused until it says otherwise.
      const offline = record.state === "stopped" || record.state === "failed";
      if (!offline || (await liveState(dir)).vmmAlive) {
        throw new PyroError(
          "conflict",
          `workspace ${id} is ${record.state}; stop it first with \`pyro workspace stop ${id}\` (MCP: workspace_stop), the disk tools read a stopped workspace's disk`,
          { details: { workspace_id: id, state: record.state } },
        );
      }
      const state = vmFiles(dir).stateDisk;
      if (!(await stat(state).catch(() => undefined))?.isFile()) {
        throw new PyroError(
          "conflict",
          `workspace ${id} has no disk (its creation did not finish); delete it and create it again`,
        );
      }
      await replayJournal(state);
      return fn(await MergedDisk.open(await baseImage(record, dir, this.progress), state));
    });
  }
}

/**
 * The guest powers off without unmounting, so its disk's journal may hold the last
 * writes; debugfs reads the file system in place, so the journal is replayed first, as the
 * guest's kernel would at its next mount (e2fsck does only that with `journal_only`).
 */
async function replayJournal(state: string): Promise<void> {
  if (!(await needsJournalRecovery(state))) return;
  // Bounded like every debugfs call: a crafted journal must not hold the state lock forever.
  const result = await runCommand("e2fsck", ["-E", "journal_only", "-p", state], {
    timeout: DEBUGFS_TIMEOUT_MS,
    killSignal: "SIGKILL",
  });
  // 0: nothing to fix, 1: the journal was replayed.
  if (result.code !== 0 && result.code !== 1) {
    throw new PyroError(
      "guest_error",
      `the workspace's disk journal could not be replayed (e2fsck exited ${result.code}): ${result.stdout.slice(-500)}${result.stderr.slice(-500)}`,
    );
  }
}

/**
 * The lower layer the guest last ran on: the image its last boot used, while the cache
 * still has it, else the environment's current image (what the next start boots).
 */
async function baseImage(record: WorkspaceRecord, dir: string, progress: ProgressSink) {
  const launch = await readJsonIfExists<ShimLaunchConfig>(vmFiles(dir).launch);
  if (launch?.rootfs_path && (await stat(launch.rootfs_path).catch(() => undefined))?.isFile())
    return launch.rootfs_path;
  return (await bootArtifacts(record.environment, progress)).rootfs;
}

/** UTF-8 text when the bytes are text (a character cut by max_bytes dropped), else base64. */
function encodeContent(bytes: Buffer, truncated: boolean) {
  for (let cut = 0; cut <= (truncated ? 3 : 0); cut++) {
    const text = tryDecodeUtf8(bytes.subarray(0, bytes.length - cut));
    if (text !== undefined) return { content: text, encoding: "utf-8" as const };
  }
  return { content: bytes.toString("base64"), encoding: "base64" as const };
}
