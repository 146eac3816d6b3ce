import { execFileSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isPyroError } from "../../src/contract/errors.js";
import { debugfsBatch, parseListings, readInodeBytes } from "../../src/disk/debugfs.js";
import { exportImage } from "../../src/disk/export.js";
import { MergedDisk, walkDisk, type DiskEntry } from "../../src/disk/merged.js";
import { tempDir } from "../helpers/temp.js";

// The disk tools' reader against real ext4 images made with mkfs.ext4 -d, as the
// environment (base) and a workspace's state disk (upper + work) are. Whiteouts need
// mknod and the opaque mark a trusted.* attribute, so this file runs as root, like the
// rest of the host tier here.
const root = tempDir("pyro-disk-tools-");
const baseImage = join(root, "base.ext4");
const stateImage = join(root, "state.ext4");
const LONG_TARGET = `/${"x".repeat(100)}`;
const NEWLINE_NAME = "two\nlines";

function put(tree: string, path: string, content: string | Buffer = "", mode = 0o644) {
  mkdirSync(dirname(join(tree, path)), { recursive: true });
  writeFileSync(join(tree, path), content, { mode });
  chmodSync(join(tree, path), mode);
}

function makeImage(tree: string, image: string, label: string, size = "64M") {
  execFileSync("mkfs.ext4", ["-q", "-F", "-L", label, "-d", tree, image, size]);
}

function whiteout(tree: string, path: string) {
  mkdirSync(dirname(join(tree, path)), { recursive: true });
  execFileSync("mknod", [join(tree, path), "c", "0", "0"]);
}

function opaque(tree: string, path: string) {
  mkdirSync(join(tree, path), { recursive: true });
  const script = "import os,sys; os.setxattr(sys.argv[1], 'trusted.overlay.opaque', b'y')";
  execFileSync("python3", ["-c", script, join(tree, path)]);
}

function buildBase(tree: string) {
  put(tree, "etc/hostname", "base\n");
  put(tree, "etc/motd", "motd\n");
  put(tree, "etc/keep", "keep\n");
  put(tree, "opq/old.txt", "old\n");
  put(tree, "gone/inner.txt", "inner\n");
  put(tree, "replaced", "was a file\n");
  put(tree, "usr/bin/tool", "#!/bin/sh\n", 0o4755);
  linkSync(join(tree, "usr/bin/tool"), join(tree, "usr/bin/tool2"));
  symlinkSync("usr/bin", join(tree, "bin"));
  symlinkSync(LONG_TARGET, join(tree, "longlink"));
  mkdirSync(join(tree, "run/lock"), { recursive: true });
  mkdirSync(join(tree, "dev"));
  execFileSync("mknod", ["-m", "666", join(tree, "dev/null"), "c", "1", "3"]);
  execFileSync("mkfifo", ["-m", "600", join(tree, "srv-pipe")]);
  put(tree, "home/user/owned.txt", "mine\n", 0o640);
  chownSync(join(tree, "home/user/owned.txt"), 1000, 1000);
}

function buildState(tree: string) {
  mkdirSync(join(tree, "work"), { recursive: true });
  const upper = join(tree, "upper");
  put(upper, "etc/hostname", "upper\n");
  whiteout(upper, "etc/motd");
  whiteout(upper, "gone");
  opaque(upper, "opq");
  put(upper, "opq/new.txt", "new\n");
  put(upper, "replaced/child.txt", "child\n");
  put(upper, "workspace/a.txt", "hello\n");
  put(upper, `workspace/${NEWLINE_NAME}`, "odd\n");
  put(upper, "workspace/bin.dat", Buffer.from([0, 1, 2, 255]));
  symlinkSync("/etc/passwd", join(upper, "workspace/escape"));
  put(upper, "run/pyro-secrets/TOKEN", "s3cret\n", 0o600);
  put(upper, "run/pyro/state/x", "runtime\n");
}

let disk: MergedDisk;

beforeAll(async () => {
  buildBase(join(root, "base"));
  buildState(join(root, "state"));
  makeImage(join(root, "base"), baseImage, "pyro-base");
  makeImage(join(root, "state"), stateImage, "pyro-state");
  disk = await MergedDisk.open(baseImage, stateImage);
});

afterAll(() => {
  for (const dir of readdirSync(root).filter((d) => d.startsWith("mnt-"))) {
    try {
      execFileSync("umount", ["-R", join(root, dir)], { stdio: "ignore" });
    } catch {
      // not mounted
    }
  }
});

async function walkAll(merged: MergedDisk) {
  const walked = await walkDisk(merged, await merged.resolve("/"), {
    recursive: true,
    maxEntries: 100_000,
  });
  return walked;
}

const byPath = (entries: DiskEntry[]) => new Map(entries.map((e) => [e.path, e]));

describe("the merged root of a base image and a state disk", () => {
  it("applies the upper layer, whiteouts and opaque directories", async () => {
    const { nodes, truncated } = await walkAll(disk);
    expect(truncated).toBe(false);
    const paths = nodes.map((n) => n.entry.path).sort();
    expect(paths).toEqual(
      [
        "/bin",
        "/dev",
        "/dev/null",
        "/etc",
        "/etc/hostname",
        "/etc/keep",
        "/home",
        "/home/user",
        "/home/user/owned.txt",
        "/longlink",
        "/lost+found",
        "/opq",
        "/opq/new.txt",
        "/replaced",
        "/replaced/child.txt",
        "/run",
        "/run/lock",
        "/srv-pipe",
        "/usr",
        "/usr/bin",
        "/usr/bin/tool",
        "/usr/bin/tool2",
        "/workspace",
        "/workspace/a.txt",
        "/workspace/bin.dat",
        "/workspace/escape",
        `/workspace/${NEWLINE_NAME}`,
      ].sort(),
    );
    const entries = byPath(nodes.map((n) => n.entry));
    expect(entries.get("/home/user/owned.txt")).toMatchObject({
      mode: "0640",
      uid: 1000,
      gid: 1000,
    });
    expect(entries.get("/usr/bin/tool")).toMatchObject({ mode: "4755", artifact_type: "file" });
    expect(entries.get("/bin")).toMatchObject({ artifact_type: "symlink", link_target: "usr/bin" });
    expect(entries.get("/longlink")?.link_target).toBe(LONG_TARGET);
    expect(entries.get("/workspace/escape")?.link_target).toBe("/etc/passwd");
    expect(entries.get("/replaced")?.artifact_type).toBe("directory");
    expect(entries.get("/dev/null")).toMatchObject({ artifact_type: "other", mode: "0666" });
  });

  it("reads each file from the layer that shows it", async () => {
    const read = async (path: string) => {
      const node = await disk.resolve(path);
      const image = node.layer === "upper" ? stateImage : baseImage;
      return (await readInodeBytes(image, node.ino, 1024)).toString("utf8");
    };
    expect(await read("/etc/hostname")).toBe("upper\n");
    expect(await read("/etc/keep")).toBe("keep\n");
    expect(await read(`/workspace/${NEWLINE_NAME}`)).toBe("odd\n");
    const hostname = await disk.resolve("/etc/hostname");
    expect((await readInodeBytes(stateImage, hostname.ino, 2)).toString()).toBe("up");
  });

  it("says not_found for deleted, hidden and runtime-only paths, and never follows links", async () => {
    for (const path of [
      "/etc/motd",
      "/gone",
      "/gone/inner.txt",
      "/opq/old.txt",
      "/run/pyro-secrets",
      "/run/pyro-secrets/TOKEN",
      "/run/pyro/state/x",
      "/bin/tool",
    ]) {
      const error = await disk.resolve(path).catch((e: unknown) => e);
      expect(isPyroError(error) && error.code, path).toBe("not_found");
    }
  });

  it("stops reading debugfs past its output cap", async () => {
    const whole = await debugfsBatch(baseImage, ["ls -p <2>"]);
    expect(whole.length).toBeGreaterThan(100);
    const error = await debugfsBatch(baseImage, ["ls -p <2>"], { maxBytes: 100 }).catch(
      (e: unknown) => e,
    );
    expect(isPyroError(error) && error.code).toBe("guest_error");
    const hostname = await disk.resolve("/etc/hostname");
    expect(await readInodeBytes(stateImage, hostname.ino, 3)).toEqual(Buffer.from("upp"));
  });

  it("matches what the kernel's overlayfs shows for the same two images", async () => {
    const lower = join(root, "mnt-base");
    const upper = join(root, "mnt-state");
    const merged = join(root, "mnt-merged");
    for (const dir of [lower, upper, merged]) mkdirSync(dir);
    execFileSync("mount", ["-o", "ro,loop", baseImage, lower]);
    execFileSync("mount", ["-o", "ro,loop", stateImage, upper]);
    // Two lower layers and no upper: a read-only overlay with the guest's own rules.
    execFileSync("mount", [
      "-t",
      "overlay",
      "overlay",
      "-o",
      `lowerdir=${upper}/upper:${lower}`,
      merged,
    ]);
    try {
      const kernel = kernelView(merged, "/");
      const ours = (await walkAll(disk)).nodes.map((n) => n.entry);
      const comparable = (e: DiskEntry) => [
        e.path,
        e.artifact_type,
        e.size_bytes,
        e.mode,
        e.uid,
        e.gid,
        e.link_target,
      ];
      const visible = kernel.filter((e) => !e.path.startsWith("/run/pyro"));
      expect(ours.map(comparable).sort()).toEqual(visible.map(comparable).sort());
      expect(kernel.some((e) => e.path.startsWith("/run/pyro"))).toBe(true);
    } finally {
      for (const dir of [merged, upper, lower]) execFileSync("umount", [dir]);
    }
  });
});

/** The same entries as the disk tools report, read through a real mount with lstat. */
function kernelView(mount: string, path: string): DiskEntry[] {
  const out: DiskEntry[] = [];
  for (const name of readdirSync(join(mount, path)).sort()) {
    const child = path === "/" ? `/${name}` : `${path}/${name}`;
    const info = lstatSync(join(mount, child));
    const type = info.isDirectory()
      ? "directory"
      : info.isFile()
        ? "file"
        : info.isSymbolicLink()
          ? "symlink"
          : "other";
    out.push({
      path: child,
      artifact_type: type,
      size_bytes: type === "directory" ? 0 : info.size,
      link_target: type === "symlink" ? readlinkSync(join(mount, child)) : null,
      mode: (info.mode & 0o7777).toString(8).padStart(4, "0"),
      uid: info.uid,
      gid: info.gid,
    });
    if (type === "directory") out.push(...kernelView(mount, child));
  }
  return out;
}

describe("export", () => {
  it("writes an image that is the same merged root, standing alone", async () => {
    const output = join(root, "export.ext4");
    const { nodes } = await walkAll(disk);
    const summary = await exportImage(disk, nodes, output);
    expect(summary.entries).toBe(nodes.length);
    expect(summary.skipped_entries).toBe(0);
    execFileSync("e2fsck", ["-fn", output], { stdio: "ignore" }); // throws unless clean
    // Read back with the same reader, as a base with an empty state disk.
    const empty = join(root, "empty-state");
    mkdirSync(empty);
    const emptyImage = join(root, "empty.ext4");
    makeImage(empty, emptyImage, "pyro-state", "8M");
    const exported = await MergedDisk.open(output, emptyImage);
    const again = (await walkAll(exported)).nodes.map((n) => n.entry);
    expect(again).toEqual(nodes.map((n) => n.entry));
    const tool = await exported.resolve("/usr/bin/tool");
    const tool2 = await exported.resolve("/usr/bin/tool2");
    expect(tool2.ino).toBe(tool.ino); // the hard link stays one file
    const devNull = await exported.resolve("/dev/null");
    expect(devNull.device).toEqual({ major: 1, minor: 3 });
    expect(
      (await readInodeBytes(output, (await exported.resolve("/etc/hostname")).ino, 64)).toString(),
    ).toBe("upper\n");
  });

  it("refuses files that add up beyond the limit before staging anything", async () => {
    const tree = join(root, "sparse-state");
    mkdirSync(join(tree, "upper/workspace"), { recursive: true });
    execFileSync("truncate", ["-s", "20G", join(tree, "upper/workspace/huge")]);
    const image = join(root, "sparse.ext4");
    makeImage(tree, image, "pyro-state");
    const sparse = await MergedDisk.open(baseImage, image);
    const output = join(root, "sparse-export.ext4");
    const error = await exportImage(sparse, (await walkAll(sparse)).nodes, output).catch(
      (e: unknown) => e,
    );
    expect(isPyroError(error) && error.code).toBe("unavailable");
    expect(String(error)).toMatch(/GiB/);
    expect(existsSync(output)).toBe(false);
  });

  it("never writes through a link, even one sharing its name with a directory", async () => {
    // Two entries of one name, a directory and a symlink out of the stage: only a crafted
    // disk has that. mkfs.ext4 cannot make it, so a unique name is renamed in the bytes
    // (no metadata checksums, so the directory block stays readable).
    const victim = join(root, "victim");
    const tree = join(root, "dup-state");
    mkdirSync(victim);
    put(join(tree, "upper/workspace"), "dupdirZZ/f", "payload\n");
    symlinkSync(victim, join(tree, "upper/workspace/dupsymZZ"));
    const image = join(root, "dup.ext4");
    execFileSync("mkfs.ext4", ["-q", "-F", "-O", "^metadata_csum", "-d", tree, image, "16M"]);
    const bytes = readFileSync(image);
    const at = bytes.indexOf("dupdirZZ");
    expect(bytes.indexOf("dupdirZZ", at + 1)).toBe(-1);
    bytes.write("dupsymZZ", at);
    writeFileSync(image, bytes);
    const dup = await MergedDisk.open(baseImage, image);
    const { nodes } = await walkAll(dup);
    expect(nodes.filter((n) => n.entry.path === "/workspace/dupsymZZ")).toHaveLength(1);
    await exportImage(dup, nodes, join(root, "dup-export.ext4"));
    expect(readdirSync(victim)).toEqual([]);
  });

  it("ends a walk of a crafted directory loop instead of following it", async () => {
    const tree = join(root, "loop-state");
    mkdirSync(join(tree, "upper/workspace/a"), { recursive: true });
    const image = join(root, "loop.ext4");
    makeImage(tree, image, "pyro-state");
    const listing = await debugfsBatch(image, ["ls -p <2>"]);
    const upperIno = parseListings(image, listing, [2])
      .get(2)!
      .find((e) => e.name === "upper")!.ino;
    // A hard link to a directory: only a crafted disk has one. `ln` makes the entry alone.
    execFileSync("debugfs", ["-w", "-R", `ln <${upperIno}> /upper/workspace/a/loop`, image], {
      stdio: "ignore",
    });
    const looped = await MergedDisk.open(baseImage, image);
    const walked = await walkAll(looped);
    expect(walked.truncated).toBe(true);
    expect(walked.nodes.filter((n) => n.entry.path.endsWith("/loop"))).toHaveLength(1);
  });
});
