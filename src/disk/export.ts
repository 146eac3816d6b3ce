/**
 * A standalone ext4 image of a merged root: the tree is staged on the host from the two
 * images (debugfs `dump` of each file by inode into a directory pyro made, links and
 * directories created by pyro), then packed with `mkfs.ext4 -d`, as environments are.
 * The stage is built from names pyro checked, parent before child, so nothing the guest
 * wrote can make a host call follow a link out of it.
 */
import { randomBytes } from "node:crypto";
import {
  link,
  lchown,
  chmod,
  mkdir,
  mkdtemp,
  rename,
  rm,
  stat,
  statfs,
  symlink,
  unlink,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { PyroError } from "../contract/errors.js";
import { runChecked } from "../util/process.js";
import {
  DEBUGFS_DUMP_TIMEOUT_MS,
  debugfsBatch,
  fileType,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
} from "./debugfs.js";
import type { DiskNode, MergedDisk } from "./merged.js";

/** Most file bytes an export stages (sparse files count at their full size). */
export const MAX_EXPORT_FILE_BYTES = 16 * 2 ** 30;
/** Commands per debugfs process while dumping, so no single batch grows without end. */
const DUMP_BATCH = 2000;
const EXPORT_LABEL = "pyro-export";

export interface ExportSummary {
  size_bytes: number;
  entries: number;
  bytes: number;
  skipped_entries: number;
}

/** Writes the image of `nodes` (a whole walk of `disk`, parents first) to `output`. */
export async function exportImage(
  disk: MergedDisk,
  nodes: readonly DiskNode[],
  output: string,
): Promise<ExportSummary> {
  const bytes = fileBytes(nodes);
  if (bytes > MAX_EXPORT_FILE_BYTES) {
    throw new PyroError(
      "unavailable",
      `the workspace's files add up to ${gib(bytes)} GiB (sparse files at full size), more than the ${gib(MAX_EXPORT_FILE_BYTES)} GiB an export stages; copy what you need with workspace disk read or workspace export instead`,
    );
  }
  const stage = await mkdtemp(join(tmpdir(), "pyro-disk-export-"));
  const partial = join(dirname(output), `.${randomBytes(6).toString("hex")}.pyro-export`);
  try {
    await requireSpace(stage, bytes, "the temp directory");
    await requireSpace(dirname(output), bytes, "the output's directory");
    const tree = join(stage, "root");
    const staged = await stageTree(disk, nodes, tree, join(stage, "blobs"));
    const sizeKib = Math.ceil((bytes * 1.15 + staged.entries * 4096 + 64 * 2 ** 20) / 1024);
    await runChecked("make the exported ext4 image", "mkfs.ext4", [
      "-q",
      "-F",
      "-L",
      EXPORT_LABEL,
      "-m",
      "0",
      "-N",
      String(Math.ceil(staged.entries * 1.2) + 4096),
      "-d",
      tree,
      partial,
      `${sizeKib}K`,
    ]);
    await rename(partial, output);
    return { size_bytes: (await stat(output)).size, bytes, ...staged };
  } finally {
    await rm(partial, { force: true });
    await rm(stage, { recursive: true, force: true });
  }
}

/** Each file's bytes once, however many names (hard links) it has. */
function fileBytes(nodes: readonly DiskNode[]): number {
  const seen = new Map<string, number>();
  for (const node of nodes) {
    if (node.entry.artifact_type === "file")
      seen.set(`${node.layer}:${node.ino}`, node.entry.size_bytes);
  }
  return [...seen.values()].reduce((a, b) => a + b, 0);
}

async function requireSpace(dir: string, bytes: number, what: string): Promise<void> {
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  const needed = bytes * 1.1 + 64 * 2 ** 20;
  if (free < needed) {
    throw new PyroError(
      "unavailable",
      `${what} (${dir}) has ${gib(free)} GiB free; the export needs about ${gib(needed)} GiB there`,
    );
  }
}

/**
 * Creates `nodes` under `root`. Files are dumped by inode into `blobs` (names pyro makes)
 * and then linked into place, which also keeps hard links. Special files (devices, fifos,
 * sockets) and links whose target could not be read are skipped and counted.
 */
async function stageTree(
  disk: MergedDisk,
  nodes: readonly DiskNode[],
  root: string,
  blobs: string,
) {
  await mkdir(root, { mode: 0o755 });
  await mkdir(blobs, { mode: 0o700 });
  const made = new Set<string>(["/"]);
  const files = new Map<string, DiskNode[]>();
  let skipped = 0;
  for (const node of nodes) {
    const { path, artifact_type: type, link_target } = node.entry;
    if (!made.has(parentOf(path))) {
      skipped++;
      continue;
    }
    const host = join(root, path);
    if (type === "directory") {
      await mkdir(host, { mode: 0o700 });
      made.add(path);
    } else if (type === "symlink" && link_target && !link_target.includes("\0")) {
      await symlink(link_target, host);
      made.add(`link:${path}`);
    } else if (type === "file") {
      const key = `${node.layer}:${node.ino}`;
      files.set(key, [...(files.get(key) ?? []), node]);
    } else if (await makeSpecial(node, host)) made.add(`special:${path}`);
    else skipped++;
  }
  await dumpFiles(disk, files, root, blobs);
  // Children first, so a read-only directory is made read-only after it was filled and
  // set-id bits set by chmod are not cleared by a later chown.
  for (const node of [...nodes].reverse()) await applyOwnership(node, root, made, files);
  await chmod(root, 0o755);
  return { entries: nodes.length - skipped, skipped_entries: skipped };
}

async function dumpFiles(
  disk: MergedDisk,
  files: Map<string, DiskNode[]>,
  root: string,
  blobs: string,
): Promise<void> {
  if (/["\n\\]/.test(blobs)) {
    throw new PyroError(
      "unavailable",
      `the temp directory ${blobs} has a quote, backslash or newline in its path; set TMPDIR to a plain path`,
    );
  }
  const groups = [...files.entries()];
  for (let i = 0; i < groups.length; i += DUMP_BATCH) {
    const batch = groups.slice(i, i + DUMP_BATCH);
    for (const layer of ["upper", "base"] as const) {
      const mine = batch.filter(([, names]) => names[0]!.layer === layer);
      const image = layer === "upper" ? disk.stateImage : disk.baseImage;
      await debugfsBatch(
        image,
        mine.map(
          ([key, names]) => `dump <${names[0]!.ino}> "${join(blobs, key.replace(":", "-"))}"`,
        ),
        { timeoutMs: DEBUGFS_DUMP_TIMEOUT_MS },
      );
    }
    for (const [key, names] of batch)
      await placeFile(join(blobs, key.replace(":", "-")), names, root);
  }
}

async function placeFile(blob: string, names: DiskNode[], root: string): Promise<void> {
  const size = await stat(blob).then(
    (s) => s.size,
    () => -1,
  );
  if (size !== names[0]!.entry.size_bytes) {
    throw new PyroError(
      "guest_error",
      `${names[0]!.entry.path} could not be read whole from the workspace's disk (${size} of ${names[0]!.entry.size_bytes} bytes); its file system may be damaged`,
    );
  }
  for (const node of names) await link(blob, join(root, node.entry.path));
  await unlink(blob);
}

async function applyOwnership(
  node: DiskNode,
  root: string,
  made: Set<string>,
  files: Map<string, DiskNode[]>,
): Promise<void> {
  const { path, artifact_type: type, uid, gid, mode } = node.entry;
  const host = join(root, path);
  const placed =
    (type === "directory" && made.has(path)) ||
    (type === "symlink" && made.has(`link:${path}`)) ||
    (type === "file" && files.has(`${node.layer}:${node.ino}`)) ||
    (type === "other" && made.has(`special:${path}`));
  if (!placed) return;
  // Without root the owners cannot be set: the image then has the caller's uid (documented).
  if (process.getuid?.() === 0) await lchown(host, uid, gid);
  if (type !== "symlink") await chmod(host, Number.parseInt(mode, 8));
}

/**
 * Device nodes and FIFOs, made with mknod/mkfifo when pyro runs as root (Node has no
 * mknod); the stage is root's alone (mkdtemp, 0700) and mkfs.ext4 records them without
 * opening them. Sockets are not kept: nothing listens on them in an image. False when
 * the node is not made.
 */
async function makeSpecial(node: DiskNode, host: string): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  const kind = fileType(node.rawMode);
  const args =
    kind === S_IFIFO
      ? ["mkfifo", host]
      : (kind === S_IFCHR || kind === S_IFBLK) && node.device
        ? [
            "mknod",
            host,
            kind === S_IFCHR ? "c" : "b",
            String(node.device.major),
            String(node.device.minor),
          ]
        : undefined;
  if (!args) return false;
  await runChecked(`recreate ${node.entry.path} in the exported image`, args[0]!, args.slice(1));
  return true;
}

const parentOf = (path: string) => {
  const cut = path.lastIndexOf("/");
  return cut <= 0 ? "/" : path.slice(0, cut);
};

const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(1);
