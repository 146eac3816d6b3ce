import { mkdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { runChecked } from "../util/process.js";
import type { ProgressSink } from "../util/progress.js";
import { debianMirror } from "./apt-mirror.js";
import { sha256File } from "./artifacts.js";
import { isolatedCommand, removeBuildDir } from "./build-dir.js";
import type { Recipe } from "./catalog.js";

export const BASE_IMAGE_LABEL = "pyro-base";
/** Docs, manuals and translations are dead weight in an agent's sandbox. */
const EXCLUDED_PATHS = [
  "/usr/share/doc/*",
  "/usr/share/man/*",
  "/usr/share/info/*",
  "/usr/share/locale/*",
];

export interface BuiltImage {
  imagePath: string;
  sizeBytes: number;
  sha256: string;
  packages: { name: string; version: string }[];
  mirror: string;
}

/** mmdebstrap into a directory, then `mkfs.ext4 -d` into a read-only base image. */
export async function buildRootfsImage(
  recipe: Recipe,
  workDir: string,
  progress: ProgressSink,
): Promise<BuiltImage> {
  const mirror = await debianMirror(recipe.suite);
  const tree = join(workDir, "tree");
  const emit = (phase: string, detail?: string) =>
    progress({
      scope: "pull",
      phase,
      fields: { environment: recipe.name },
      ...(detail ? { detail } : {}),
    });
  emit("bootstrap");
  const args = [
    "--mode=root",
    "--format=directory",
    `--variant=${recipe.variant}`,
    ...(recipe.packages.length ? [`--include=${recipe.packages.join(",")}`] : []),
    ...EXCLUDED_PATHS.map((p) => `--dpkgopt=path-exclude=${p}`),
    '--customize-hook=rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*',
    recipe.suite,
    tree,
    mirror,
  ];
  // In namespaces of its own: a client killed mid-build must not leave the tree's /proc,
  // /sys, /dev/pts and /dev/shm mounted on the host (see build-dir.ts).
  const bootstrap = isolatedCommand("mmdebstrap", args);
  await runChecked(
    `build environment ${recipe.name} (mmdebstrap in its own mount namespace)`,
    bootstrap.cmd,
    bootstrap.args,
    { onLine: (line) => emit("bootstrap", line.slice(0, 120)) },
  );
  const packages = await readInstalledPackages(tree);
  emit("make-image");
  const imagePath = join(workDir, "rootfs.ext4");
  const { bytes, inodes } = await treeUsage(tree);
  const sizeKib = Math.ceil((bytes * 1.15 + 64 * 2 ** 20) / 1024);
  await runChecked("make the ext4 image", "mkfs.ext4", [
    "-q",
    "-F",
    "-L",
    BASE_IMAGE_LABEL,
    "-O",
    "^has_journal",
    "-m",
    "0",
    "-N",
    String(Math.ceil(inodes * 1.2) + 4096),
    "-d",
    tree,
    imagePath,
    `${sizeKib}K`,
  ]);
  await removeBuildDir(tree);
  emit("digest");
  const sha256 = await sha256File(imagePath);
  const sizeBytes = (await stat(imagePath)).size;
  return { imagePath, sizeBytes, sha256, packages, mirror };
}

async function treeUsage(tree: string): Promise<{ bytes: number; inodes: number }> {
  const bytes = await runChecked("measure the tree", "du", ["-sb", tree]);
  const inodes = await runChecked("count the tree", "du", ["-s", "--inodes", tree]);
  return {
    bytes: Number.parseInt(bytes.stdout, 10),
    inodes: Number.parseInt(inodes.stdout, 10),
  };
}

/** Package name and version of everything dpkg installed, for the manifest. */
async function readInstalledPackages(tree: string) {
  const status = await readFile(join(tree, "var/lib/dpkg/status"), "utf8");
  const packages: { name: string; version: string }[] = [];
  for (const stanza of status.split("\n\n")) {
    const field = (name: string) => new RegExp(`^${name}: (.*)$`, "m").exec(stanza)?.[1];
    if (field("Status")?.endsWith(" installed") && field("Package") && field("Version")) {
      packages.push({ name: field("Package")!, version: field("Version")! });
    }
  }
  return packages.sort((a, b) => a.name.localeCompare(b.name));
}

/** An empty directory at `path`, whatever an interrupted build left there. */
export async function prepareWorkDir(path: string) {
  await removeBuildDir(path);
  await mkdir(path, { recursive: true });
}
