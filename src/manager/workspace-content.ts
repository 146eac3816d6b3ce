import { chmod, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { z } from "zod";
import { PyroError } from "../contract/errors.js";
import { parseParams } from "../contract/validate.js";
import {
  applyWorkspacePatch,
  createSnapshot,
  deleteSnapshot,
  exportWorkspace,
  listWorkspaceFiles,
  pushWorkspaceSync,
  readWorkspaceFile,
  resetWorkspace,
  WorkspaceIdParams,
  writeWorkspaceFile,
  NAME_PATTERN,
} from "../contract/workspace.js";
import type { ChannelClient } from "../guest/client.js";
import { deletePath, listFiles, readFileBytes, writeFileBytes } from "../guest/files.js";
import {
  DEFAULT_ARCHIVE_LIMITS,
  detectSeed,
  extractArchive,
  packDirectory,
} from "../workspace/archive.js";
import { patchedPaths, planPatch, summarizeChanges } from "../workspace/patch.js";
import { guestPath, normalizeWorkspacePath, WORKSPACE_ROOT } from "../workspace/paths.js";
import { checkWritableText, decodeUtf8Text } from "../workspace/text.js";
import { countTree, replacePath } from "../workspace/host-tree.js";
import { diffWithGuest } from "./workspace-diff.js";
import {
  captureFromGuest,
  capturedEntry,
  pushArchive,
  snapshotFromGuest,
} from "./workspace-guest.js";
import { workspaceDir, workspaceFiles, workspaceStore } from "./workspace-store.js";
import type { WorkspaceManager } from "./workspaces.js";

const MAX_LIST_ENTRIES = 10_000;
/** Files a patch rewrites are read whole into memory, so they are bounded. */
const MAX_PATCHED_FILE_BYTES = 16 << 20;
const BASELINE = "baseline";

/** What a workspace holds: files, patches, diffs, copies in and out, snapshots, reset. */
export class WorkspaceContent {
  constructor(private readonly workspaces: WorkspaceManager) {}

  async listFiles(input: z.input<typeof listWorkspaceFiles.params>) {
    const params = parseParams(listWorkspaceFiles.params, input);
    const path = normalizeWorkspacePath(params.path);
    await this.workspaces.requireStarted(params.workspace_id);
    const listing = await this.workspaces.withGuest(params.workspace_id, (client) =>
      listFiles(client, {
        root: WORKSPACE_ROOT,
        path: path || ".",
        recursive: params.recursive,
        max_entries: MAX_LIST_ENTRIES,
      }),
    );
    await this.workspaces.touch(params.workspace_id);
    return { path: guestPath(path), recursive: params.recursive, ...listing };
  }

  async readFile(input: z.input<typeof readWorkspaceFile.params>) {
    const params = parseParams(readWorkspaceFile.params, input);
    const path = requireFilePath(params.path);
    await this.workspaces.requireStarted(params.workspace_id);
    const file = await this.workspaces.withGuest(params.workspace_id, (client) =>
      readFileBytes(client, { root: WORKSPACE_ROOT, path, max_bytes: params.max_bytes }),
    );
    const content = decodeUtf8Text(file.content, guestPath(path), { truncated: file.truncated });
    await this.workspaces.touch(params.workspace_id);
    return {
      path: guestPath(path),
      size_bytes: file.size_bytes,
      content,
      truncated: file.truncated,
    };
  }

  async writeFile(input: z.input<typeof writeWorkspaceFile.params>) {
    const params = parseParams(writeWorkspaceFile.params, input);
    const path = requireFilePath(params.path);
    checkWritableText(params.text, guestPath(path));
    await this.workspaces.requireStarted(params.workspace_id);
    const written = await workspaceStore.withLock(params.workspace_id, () =>
      this.workspaces.withGuest(
        params.workspace_id,
        (client) =>
          writeFileBytes(client, {
            root: WORKSPACE_ROOT,
            path,
            content: Buffer.from(params.text, "utf8"),
          }),
        { locked: true },
      ),
    );
    await this.workspaces.touch(params.workspace_id);
    return { path: guestPath(path), bytes_written: written.bytes_written };
  }

  /** Reads every file the patch touches, checks every hunk, and only then writes. */
  async applyPatch(input: z.input<typeof applyWorkspacePatch.params>) {
    const params = parseParams(applyWorkspacePatch.params, input);
    await this.workspaces.requireStarted(params.workspace_id);
    return workspaceStore.withLock(params.workspace_id, () =>
      this.workspaces.withGuest(
        params.workspace_id,
        async (client) => {
          const current = new Map<string, string | undefined>();
          for (const path of patchedPaths(params.patch)) {
            current.set(path, await readTextIfExists(client, path));
          }
          const changes = planPatch(params.patch, (path) => current.get(path));
          for (const change of changes) {
            if (change.status === "deleted")
              await deletePath(client, {
                root: WORKSPACE_ROOT,
                path: change.path,
                recursive: false,
              });
            else
              await writeFileBytes(client, {
                root: WORKSPACE_ROOT,
                path: change.path,
                content: Buffer.from(change.content ?? "", "utf8"),
              });
          }
          await this.workspaces.touch(params.workspace_id);
          return summarizeChanges(changes);
        },
        { locked: true },
      ),
    );
  }

  async diff(input: z.input<typeof WorkspaceIdParams>) {
    const { workspace_id } = parseParams(WorkspaceIdParams, input);
    await this.workspaces.requireStarted(workspace_id);
    const dir = workspaceDir(workspace_id);
    const result = await this.workspaces.withGuest(workspace_id, (client) =>
      diffWithGuest(client, dir, workspaceFiles(dir).baseline),
    );
    await this.workspaces.touch(workspace_id);
    return { workspace_id, ...result };
  }

  /** Copies a /workspace path out to the host through a checked temp dir, then moves it in place. */
  async export(input: z.input<typeof exportWorkspace.params>) {
    const params = parseParams(exportWorkspace.params, input);
    const path = normalizeWorkspacePath(params.path);
    const output = resolve(params.output_path);
    await checkOutputPath(output, params.overwrite);
    await this.workspaces.requireStarted(params.workspace_id);
    const captured = await this.workspaces.withGuest(params.workspace_id, (client) =>
      captureFromGuest(client, path),
    );
    try {
      const source = await capturedEntry(captured, path);
      // The capture's root stands for /workspace itself: give it an ordinary directory mode.
      if (path === "") await chmod(source.path, 0o755);
      const counts = await countTree(source.path);
      await replacePath(source.path, output);
      await this.workspaces.touch(params.workspace_id);
      return {
        workspace_id: params.workspace_id,
        path: guestPath(path),
        output_path: output,
        artifact_type: source.stats.isDirectory() ? ("directory" as const) : ("file" as const),
        ...counts,
      };
    } finally {
      await captured.cleanup();
    }
  }

  async syncPush(input: z.input<typeof pushWorkspaceSync.params>) {
    const params = parseParams(pushWorkspaceSync.params, input);
    const dest = normalizeWorkspacePath(params.dest, "dest");
    const seed = await detectSeed(params.source_path, "source_path");
    await this.workspaces.requireStarted(params.workspace_id);
    const staged =
      seed.mode === "tar_archive" ? await unpackArchiveFile(seed.path, "user") : undefined;
    try {
      const root = staged?.root ?? seed.path;
      const archive = await packDirectory(root);
      const counts = await countTree(root);
      await workspaceStore.withLock(params.workspace_id, () =>
        this.workspaces.withGuest(
          params.workspace_id,
          (client) => pushArchive(client, archive, dest),
          { locked: true },
        ),
      );
      await this.workspaces.touch(params.workspace_id);
      return {
        workspace_id: params.workspace_id,
        source_path: seed.path,
        dest: guestPath(dest),
        mode: seed.mode,
        ...counts,
      };
    } finally {
      await staged?.cleanup();
    }
  }

  async createSnapshot(input: z.input<typeof createSnapshot.params>) {
    const params = parseParams(createSnapshot.params, input);
    if (params.snapshot_name === BASELINE) {
      throw new PyroError(
        "invalid_argument",
        `"${BASELINE}" is the creation-time snapshot and always exists; pick another name`,
      );
    }
    await this.workspaces.requireStarted(params.workspace_id);
    const target = workspaceFiles(workspaceDir(params.workspace_id)).snapshot(params.snapshot_name);
    return workspaceStore.withLock(params.workspace_id, async () => {
      if (await exists(target)) {
        throw new PyroError(
          "conflict",
          `snapshot "${params.snapshot_name}" already exists; delete it first or pick another name`,
        );
      }
      await removePartialSnapshots(dirname(target));
      await this.workspaces.withGuest(
        params.workspace_id,
        (client) => snapshotFromGuest(client, target),
        { locked: true },
      );
      await this.workspaces.touch(params.workspace_id);
      return {
        workspace_id: params.workspace_id,
        ...(await snapshotInfo(target, params.snapshot_name, "named")),
      };
    });
  }

  async listSnapshots(input: z.input<typeof WorkspaceIdParams>) {
    const { workspace_id } = parseParams(WorkspaceIdParams, input);
    await workspaceStore.load(workspace_id);
    const files = workspaceFiles(workspaceDir(workspace_id));
    const names = (await readdir(files.snapshots).catch(() => [] as string[]))
      .filter((f) => f.endsWith(".tar"))
      .map((f) => f.slice(0, -4))
      .filter((name) => NAME_PATTERN.test(name))
      .sort();
    const snapshots = [await snapshotInfo(files.baseline, BASELINE, "baseline")];
    for (const name of names)
      snapshots.push(await snapshotInfo(files.snapshot(name), name, "named"));
    return { workspace_id, snapshots };
  }

  async deleteSnapshot(input: z.input<typeof deleteSnapshot.params>) {
    const params = parseParams(deleteSnapshot.params, input);
    if (params.snapshot_name === BASELINE) {
      throw new PyroError(
        "invalid_argument",
        "the baseline snapshot cannot be deleted; it is what workspace_diff compares against",
      );
    }
    await workspaceStore.load(params.workspace_id);
    const target = workspaceFiles(workspaceDir(params.workspace_id)).snapshot(params.snapshot_name);
    return workspaceStore.withLock(params.workspace_id, async () => {
      if (!(await exists(target)))
        throw new PyroError(
          "not_found",
          `no snapshot "${params.snapshot_name}"; list them with snapshot_list`,
        );
      await rm(target);
      return {
        workspace_id: params.workspace_id,
        snapshot_name: params.snapshot_name,
        deleted: true as const,
      };
    });
  }

  /**
   * Recreates the sandbox: power off, a writable layer holding the baseline or snapshot,
   * boot. The id and the baseline stay; services and shells are gone with the old VM.
   */
  async reset(input: z.input<typeof resetWorkspace.params>) {
    const params = parseParams(resetWorkspace.params, input);
    const id = params.workspace_id;
    await workspaceStore.load(id);
    const files = workspaceFiles(workspaceDir(id));
    const source = params.snapshot === BASELINE ? files.baseline : files.snapshot(params.snapshot);
    if (
      params.snapshot !== BASELINE &&
      (!NAME_PATTERN.test(params.snapshot) || !(await exists(source)))
    ) {
      throw new PyroError(
        "not_found",
        `no snapshot "${params.snapshot}"; list them with snapshot_list`,
      );
    }
    return workspaceStore.withLock(id, () => this.workspaces.recreate(id, source, params.snapshot));
  }
}

async function readTextIfExists(client: ChannelClient, path: string): Promise<string | undefined> {
  try {
    const file = await readFileBytes(client, {
      root: WORKSPACE_ROOT,
      path,
      max_bytes: MAX_PATCHED_FILE_BYTES,
    });
    if (file.truncated) {
      throw new PyroError(
        "invalid_argument",
        `${guestPath(path)} is larger than ${MAX_PATCHED_FILE_BYTES >> 20} MiB; patch it with a command instead`,
      );
    }
    return decodeUtf8Text(file.content, guestPath(path));
  } catch (error) {
    if (error instanceof PyroError && error.code === "not_found") return undefined;
    throw error;
  }
}

/** File tools take a file path: the root itself is not a file. */
function requireFilePath(input: string): string {
  const path = normalizeWorkspacePath(input);
  if (!path)
    throw new PyroError(
      "invalid_argument",
      "path names /workspace itself; give a file path under it",
    );
  return path;
}

async function unpackArchiveFile(path: string, origin: "guest" | "user" = "guest") {
  const root = await mkdtemp(join(tmpdir(), "pyro-tree-"));
  const cleanup = () => rm(root, { recursive: true, force: true });
  try {
    await extractArchive(path, root, DEFAULT_ARCHIVE_LIMITS, { origin });
  } catch (error) {
    await cleanup();
    throw error;
  }
  return { root, cleanup };
}

/** Host paths are checked before any VM work: exists-without-overwrite, missing parent. */
export async function checkOutputPath(output: string, overwrite: boolean) {
  if ((await exists(output)) && !overwrite) {
    throw new PyroError(
      "conflict",
      `${output} already exists; pass overwrite (--overwrite) to replace it`,
    );
  }
  const parent = await stat(dirname(output)).catch(() => undefined);
  if (!parent?.isDirectory()) {
    throw new PyroError(
      "invalid_argument",
      `the directory ${dirname(output)} does not exist; create it first`,
    );
  }
}

/**
 * A snapshot streams into a `.NAME.tar.*.partial` file beside it (archive-sinks.ts). Only
 * a snapshot under the workspace's state lock writes one, so under the lock any such file
 * is left from a host process that died mid-snapshot.
 */
async function removePartialSnapshots(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.startsWith(".") && n.endsWith(".partial"))) {
    await rm(join(dir, name), { force: true });
  }
}

async function snapshotInfo(path: string, name: string, kind: "baseline" | "named") {
  const info = await stat(path);
  return { snapshot_name: name, kind, created_at: info.mtime.toISOString(), size_bytes: info.size };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
