/**
 * The guest's root file system as its overlay mount shows it, read offline from the two
 * images: the environment's base (lower) and the workspace's state disk, whose `/upper`
 * is the overlay's upper directory (agent/src/rootfs.c). Overlayfs rules applied: an upper
 * entry hides the lower one of the same name, a character device 0:0 is a whiteout (the
 * name is deleted), and an upper directory with `trusted.overlay.opaque = y` hides the
 * whole lower directory. Redirects and metacopy are off in the guest kernel (defaults of
 * CONFIG_OVERLAY_FS), so the guest never writes them and they are not honoured here.
 */
import { PyroError } from "../contract/errors.js";
import {
  debugfsBatch,
  deviceNumbers,
  fastLinkTarget,
  fileType,
  isOpaqueBlock,
  MAX_LINK_TARGET_BYTES,
  parseCatBlocks,
  parseListings,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  splitBlocks,
  type RawEntry,
} from "./debugfs.js";

export type ArtifactType = "file" | "directory" | "symlink" | "other";

/** One entry of the merged tree, as the disk tools report it. */
export interface DiskEntry {
  path: string;
  artifact_type: ArtifactType;
  size_bytes: number;
  link_target: string | null;
  /** Permission bits with set-id and sticky bits, four octal digits ("0755"). */
  mode: string;
  uid: number;
  gid: number;
}

/** Where an entry's content lives: which image, which inode. */
export interface DiskNode {
  entry: DiskEntry;
  layer: "upper" | "base";
  ino: number;
  rawMode: number;
  /** For directories: what to list below it. */
  dir?: MergedDir;
  /** For character and block devices: their numbers. */
  device?: { major: number; minor: number };
}

/** A directory of the merged tree: its upper and lower directories, either may be absent. */
export interface MergedDir {
  path: string;
  upper?: number;
  base?: number;
}

/** Paths that exist only while the guest runs (tmpfs under /run); never shown. */
export function isRuntimeOnly(parent: string, name: string): boolean {
  return parent === "/run" && (name === "pyro" || name.startsWith("pyro-"));
}

const ROOT_INO = 2;
/** Deeper trees are not walked: a crafted disk must not make a walk unbounded. */
export const MAX_DEPTH = 256;

export class MergedDisk {
  private constructor(
    readonly baseImage: string,
    readonly stateImage: string,
    private readonly upperRoot: number | undefined,
  ) {}

  /** The merged view; a state disk without `/upper` (never booted) shows the base alone. */
  static async open(baseImage: string, stateImage: string): Promise<MergedDisk> {
    const output = await debugfsBatch(stateImage, [`ls -p <${ROOT_INO}>`]);
    const root = parseListings(stateImage, output, [ROOT_INO]).get(ROOT_INO) ?? [];
    const upper = root.find((e) => e.name === "upper" && fileType(e.mode) === S_IFDIR);
    return new MergedDisk(baseImage, stateImage, upper?.ino);
  }

  get root(): MergedDir {
    return { path: "/", base: ROOT_INO, ...(this.upperRoot ? { upper: this.upperRoot } : {}) };
  }

  /** The node at an absolute, normalised path; links are never followed. */
  async resolve(path: string): Promise<DiskNode> {
    let dir = this.root;
    let node: DiskNode = rootNode(dir);
    const parts = path.split("/").filter(Boolean);
    for (const [i, name] of parts.entries()) {
      const children = (await this.children([dir])).get(dir.path) ?? [];
      const child = children.find((c) => c.entry.path === joinPath(dir.path, name));
      if (!child) throw notFound(path);
      node = child;
      if (i === parts.length - 1) break;
      if (!child.dir) {
        const what = child.entry.artifact_type === "symlink" ? "a symlink" : "not a directory";
        throw new PyroError(
          "not_found",
          `${child.entry.path} is ${what}; disk tools take literal paths and never follow links`,
          { details: { path } },
        );
      }
      dir = child.dir;
    }
    return node;
  }

  /**
   * The children of every directory in `dirs`, by directory path: one batch of debugfs
   * commands per image and kind, whatever the number of directories.
   */
  async children(dirs: readonly MergedDir[]): Promise<Map<string, DiskNode[]>> {
    const upperDirs = dirs.flatMap((d) => (d.upper === undefined ? [] : [d.upper]));
    const opaque = await this.opaqueDirs(upperDirs);
    const baseDirs = dirs.flatMap((d) =>
      d.base === undefined || (d.upper !== undefined && opaque.has(d.upper)) ? [] : [d.base],
    );
    const listedBase = new Set(baseDirs);
    const [upper, base] = await Promise.all([
      this.listings(this.stateImage, upperDirs),
      this.listings(this.baseImage, baseDirs),
    ]);
    const upperInfo = await this.inodeInfo(this.stateImage, [...upper.values()].flat(), true);
    const baseInfo = await this.inodeInfo(this.baseImage, [...base.values()].flat(), false);
    const result = new Map<string, DiskNode[]>();
    for (const dir of dirs) {
      const fromUpper = dir.upper === undefined ? [] : (upper.get(dir.upper) ?? []);
      const fromBase =
        dir.base === undefined || !listedBase.has(dir.base) ? [] : (base.get(dir.base) ?? []);
      result.set(dir.path, mergeDir(dir, fromUpper, fromBase, upperInfo, baseInfo));
    }
    return result;
  }

  private async listings(image: string, inodes: number[]): Promise<Map<number, RawEntry[]>> {
    const commands = inodes.map((ino) => `ls -p <${ino}>`);
    return parseListings(image, await debugfsBatch(image, commands), inodes);
  }

  private async opaqueDirs(inodes: number[]): Promise<Set<number>> {
    const commands = inodes.map((ino) => `ea_list <${ino}>`);
    const blocks = splitBlocks(
      this.stateImage,
      await debugfsBatch(this.stateImage, commands),
      commands,
    );
    return new Set(inodes.filter((_, i) => isOpaqueBlock(blocks[i]!)));
  }

  /** Symlink targets, device numbers and (upper only) which devices are whiteouts. */
  private async inodeInfo(image: string, entries: RawEntry[], upper: boolean): Promise<InodeInfo> {
    const links = entries.filter((e) => fileType(e.mode) === S_IFLNK);
    const devices = entries.filter((e) => [S_IFCHR, S_IFBLK].includes(fileType(e.mode)));
    const stats = [...links.filter((l) => l.size <= 59), ...devices];
    const commands = stats.map((e) => `stat <${e.ino}>`);
    const blocks = splitBlocks(image, await debugfsBatch(image, commands), commands);
    const info: InodeInfo = { targets: new Map(), whiteouts: new Set(), devices: new Map() };
    stats.forEach((entry, i) => {
      const block = blocks[i]!;
      if (fileType(entry.mode) === S_IFLNK) {
        const target = fastLinkTarget(block, entry.size);
        if (target !== undefined) info.targets.set(entry.ino, target);
        return;
      }
      const device = deviceNumbers(block);
      if (!device) return;
      info.devices.set(entry.ino, device);
      const whiteout = upper && fileType(entry.mode) === S_IFCHR && device.major === 0;
      if (whiteout && device.minor === 0) info.whiteouts.add(entry.ino);
    });
    // Slow links hold their target in a data block; a crafted size beyond PATH_MAX is
    // not read at all (the link then shows without a target).
    const slow = links.filter((l) => l.size > 59 && l.size <= MAX_LINK_TARGET_BYTES);
    const cats = slow.map((l) => `cat <${l.ino}>`);
    for (const [ino, target] of parseCatBlocks(image, await debugfsBatch(image, cats), slow))
      info.targets.set(ino, target);
    return info;
  }
}

interface InodeInfo {
  targets: Map<number, string>;
  whiteouts: Set<number>;
  devices: Map<number, { major: number; minor: number }>;
}

function mergeDir(
  dir: MergedDir,
  fromUpper: RawEntry[],
  fromBase: RawEntry[],
  upperInfo: InodeInfo,
  baseInfo: InodeInfo,
): DiskNode[] {
  const byName = new Map<string, DiskNode>();
  const hidden = new Set<string>();
  const baseByName = new Map(fromBase.map((e) => [e.name, e]));
  for (const raw of fromUpper) {
    if (isRuntimeOnly(dir.path, raw.name) || byName.has(raw.name) || hidden.has(raw.name)) continue;
    if (upperInfo.whiteouts.has(raw.ino)) {
      hidden.add(raw.name);
      continue;
    }
    const node = toNode(dir, raw, "upper", upperInfo);
    const lower = baseByName.get(raw.name);
    if (node.dir && lower && fileType(lower.mode) === S_IFDIR) node.dir.base = lower.ino;
    byName.set(raw.name, node);
  }
  for (const raw of fromBase) {
    if (isRuntimeOnly(dir.path, raw.name) || byName.has(raw.name) || hidden.has(raw.name)) continue;
    byName.set(raw.name, toNode(dir, raw, "base", baseInfo));
  }
  return [...byName.values()].sort((a, b) => compareNames(a.entry.path, b.entry.path));
}

function toNode(dir: MergedDir, raw: RawEntry, layer: "upper" | "base", info: InodeInfo) {
  const path = joinPath(dir.path, raw.name);
  const type = artifactType(raw.mode);
  const node: DiskNode = {
    entry: {
      path,
      artifact_type: type,
      size_bytes: type === "directory" ? 0 : raw.size,
      link_target: type === "symlink" ? (info.targets.get(raw.ino) ?? null) : null,
      mode: (raw.mode & 0o7777).toString(8).padStart(4, "0"),
      uid: raw.uid,
      gid: raw.gid,
    },
    layer,
    ino: raw.ino,
    rawMode: raw.mode,
  };
  if (type === "directory") node.dir = { path, [layer]: raw.ino };
  const device = info.devices.get(raw.ino);
  if (device) node.device = device;
  return node;
}

function rootNode(dir: MergedDir): DiskNode {
  return {
    entry: {
      path: "/",
      artifact_type: "directory",
      size_bytes: 0,
      link_target: null,
      mode: "0755",
      uid: 0,
      gid: 0,
    },
    layer: dir.upper === undefined ? "base" : "upper",
    ino: dir.upper ?? ROOT_INO,
    rawMode: S_IFDIR | 0o755,
    dir,
  };
}

function artifactType(mode: number): ArtifactType {
  switch (fileType(mode)) {
    case S_IFDIR:
      return "directory";
    case S_IFREG:
      return "file";
    case S_IFLNK:
      return "symlink";
    default:
      return "other";
  }
}

export function joinPath(parent: string, name: string): string {
  return parent === "/" ? `/${name}` : `${parent}/${name}`;
}

const compareNames = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function notFound(path: string): PyroError {
  return new PyroError(
    "not_found",
    `no ${path} on the workspace's disk; list a parent directory with workspace disk list`,
    { details: { path } },
  );
}

export interface WalkResult {
  nodes: DiskNode[];
  /** Entries left out: more than `maxEntries`, deeper than {@link MAX_DEPTH}, or a loop. */
  truncated: boolean;
}

/**
 * Every node below `start`, breadth first, one debugfs batch per level. A directory inode
 * met twice (only a crafted disk hard-links directories) is not entered again, so a loop
 * ends; the walk stops at `maxEntries` and at {@link MAX_DEPTH}.
 */
export async function walkDisk(
  disk: MergedDisk,
  start: DiskNode,
  options: { recursive: boolean; maxEntries: number },
): Promise<WalkResult> {
  const nodes: DiskNode[] = [];
  const seen = new Set<string>([`${start.layer}:${start.ino}`]);
  let truncated = false;
  let level = start.dir ? [start.dir] : [];
  for (let depth = 0; level.length > 0; depth++) {
    if (depth >= MAX_DEPTH) return { nodes, truncated: true };
    const children = await disk.children(level);
    const next: MergedDir[] = [];
    for (const dir of level) {
      for (const child of children.get(dir.path) ?? []) {
        if (nodes.length >= options.maxEntries) return { nodes, truncated: true };
        nodes.push(child);
        if (!options.recursive || !child.dir) continue;
        const key = `${child.layer}:${child.ino}`;
        if (seen.has(key)) truncated = true;
        else next.push(child.dir);
        seen.add(key);
      }
    }
    level = next;
  }
  return { nodes, truncated };
}

/**
 * A disk tool's path as an absolute path with no `.`, `..` or empty parts; relative paths
 * start at `/`.
 */
export function normalizeDiskPath(input: string): string {
  if (input.includes("\0"))
    throw new PyroError("invalid_argument", "path contains a NUL byte", {
      details: { path: input },
    });
  const parts = input.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) {
    throw new PyroError(
      "invalid_argument",
      `path ${JSON.stringify(input)} has a ".." part; give the absolute path it means`,
      { details: { path: input } },
    );
  }
  return `/${parts.join("/")}`;
}
