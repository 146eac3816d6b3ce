/**
 * Workspace state disks built on the host: the seed or snapshot is unpacked (with the
 * archive checks every untrusted tar gets) into a stage laid out as the guest's overlay
 * expects (agent/src/rootfs.c: `upper/` is the writable layer, `work/` overlayfs's own),
 * then packed with `mkfs.ext4 -d`, as environments are. No VM boots to pipe a tar in, and
 * the disk is whole before it replaces the old one.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { stateDiskMkfsArgs } from "../disk/state-disk-file.js";
import { vmFiles } from "../shim/launch.js";
import { runChecked, runCommand } from "../util/process.js";
import type { ContentOrigin } from "../workspace/archive.js";

export { STATE_DISK_LABEL, STATE_DISK_SIZE, stateDiskMkfsArgs } from "../disk/state-disk-file.js";

/** Where /workspace lives in the writable layer. */
const UPPER_WORKSPACE = ["upper", "workspace"] as const;

let buildable: Promise<boolean> | undefined;

/**
 * Whether state disks can be built here with everything owned by root, as the guest's
 * own `tar -x` made them. Root: always. Otherwise mkfs.ext4 runs in a user namespace
 * that maps the caller to root (`unshare --map-root-user`), so the staged files, owned
 * by the caller, are recorded as root's; without user namespaces the guest unpacks.
 */
export function stateDisksBuildable(): Promise<boolean> {
  if (process.getuid?.() === 0) return Promise.resolve(true);
  buildable ??= runCommand("unshare", ["--user", "--map-root-user", "true"]).then(
    (result) => result.code === 0,
    () => false,
  );
  return buildable;
}

/**
 * Replaces the state disk in `dir` with one whose /workspace holds the tar at
 * `archivePath`. The archive is checked as `origin`'s (links out, devices, sizes: see
 * extractArchive); set-id and sticky bits are dropped and owners are root. The old disk
 * stays until the new one is whole, and nothing of a failed build is left.
 */
export async function buildStateDisk(
  dir: string,
  archivePath: string,
  origin: ContentOrigin,
): Promise<void> {
  const target = vmFiles(dir).stateDisk;
  const partial = `${target}.${randomBytes(6).toString("hex")}.partial`;
  // Beside the disk, not in tmpdir: a tmpfs /tmp would hold the whole tree in memory.
  const stage = await mkdtemp(join(dir, ".state-stage-"));
  try {
    const workspace = join(stage, ...UPPER_WORKSPACE);
    await mkdir(workspace, { recursive: true });
    await mkdir(join(stage, "work"));
    // Loaded here: every boot reaches this module for its mkfs arguments (`boot.ts`), and
    // the archive code (with `tar`) would cost `pyro run` its load (issue 10).
    const { DEFAULT_ARCHIVE_LIMITS, extractArchive } = await import("../workspace/archive.js");
    await extractArchive(archivePath, workspace, DEFAULT_ARCHIVE_LIMITS, { origin });
    // The disk's root and the overlay's directories as the agent would have made them.
    for (const path of [stage, join(stage, "upper"), workspace, join(stage, "work")])
      await chmod(path, 0o755);
    await runMkfs(stateDiskMkfsArgs(partial, stage));
    await rename(partial, target);
  } finally {
    await rm(partial, { force: true });
    await rm(stage, { recursive: true, force: true });
  }
}

async function runMkfs(args: string[]): Promise<void> {
  const what = "build the workspace's state disk";
  if (process.getuid?.() === 0) await runChecked(what, "mkfs.ext4", args);
  else await runChecked(what, "unshare", ["--user", "--map-root-user", "mkfs.ext4", ...args]);
}
