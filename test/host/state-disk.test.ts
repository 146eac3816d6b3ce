import { execFileSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { debugfsBatch } from "../../src/disk/debugfs.js";
import { MergedDisk, walkDisk, type DiskEntry } from "../../src/disk/merged.js";
import { buildStateDisk, STATE_DISK_LABEL } from "../../src/manager/state-disk.js";
import { vmFiles } from "../../src/shim/launch.js";
import { packDirectory } from "../../src/workspace/archive.js";
import { tempDir } from "../helpers/temp.js";

// Workspace state disks built on the host (src/manager/state-disk.ts) read back with the
// disk tools' own reader, no VM: the seed lands under /workspace of the overlay's upper
// layer with the modes, owners, links and contents the guest's own tar would have given.
// The guest tier (workspace-host-disk.test.ts) checks what a booted guest sees.
const root = tempDir("pyro-state-disk-");
const seed = join(root, "seed");
const archive = join(root, "seed.tar");
const base = join(root, "base.ext4");
const SPACED = "with space ü.txt";

function put(path: string, content: string, mode: number) {
  mkdirSync(dirname(join(seed, path)), { recursive: true });
  writeFileSync(join(seed, path), content);
  chmodSync(join(seed, path), mode);
}

function makeSeed() {
  put("README.md", "# seed\n", 0o644);
  put("bin/run.sh", "#!/bin/sh\necho run\n", 0o755);
  put("secret/key", "k\n", 0o600);
  put("readonly.txt", "ro\n", 0o444);
  put("setuid", "s\n", 0o4755);
  put(`deep/a/b/c/${SPACED}`, "deep\n", 0o640);
  put("empty", "", 0o644);
  chmodSync(join(seed, "secret"), 0o700);
  mkdirSync(join(seed, "emptydir"), { mode: 0o755 });
  mkdirSync(join(seed, "tmp"));
  chmodSync(join(seed, "tmp"), 0o1777);
  symlinkSync("bin/run.sh", join(seed, "rel-link"));
  symlinkSync("/etc/passwd", join(seed, "abs-link"));
  symlinkSync("missing/target", join(seed, "dangling"));
}

let entries: Map<string, DiskEntry>;
let disk: MergedDisk;

beforeAll(async () => {
  makeSeed();
  writeFileSync(archive, await packDirectory(seed));
  mkdirSync(join(root, "empty-base"));
  execFileSync("mkfs.ext4", [
    "-q",
    "-F",
    "-L",
    "pyro-base",
    "-d",
    join(root, "empty-base"),
    base,
    "8M",
  ]);
  // An old disk is replaced only once the new one is whole.
  writeFileSync(vmFiles(root).stateDisk, "old disk");
  await buildStateDisk(root, archive, "user");
  disk = await MergedDisk.open(base, vmFiles(root).stateDisk);
  const walked = await walkDisk(disk, await disk.resolve("/workspace"), {
    recursive: true,
    maxEntries: 1000,
  });
  entries = new Map(walked.nodes.map((n) => [n.entry.path, n.entry]));
});

const at = (path: string) => entries.get(`/workspace/${path}`);

describe("a state disk built on the host", () => {
  it("is an ext4 disk labelled for the agent, with the overlay's upper/ and work/", async () => {
    const listing = await debugfsBatch(vmFiles(root).stateDisk, ["ls -l /", "stat /work"]);
    expect(listing).toMatch(/\bupper\b/);
    expect(listing).toMatch(/\bwork\b/);
    expect(
      execFileSync("e2label", [vmFiles(root).stateDisk])
        .toString()
        .trim(),
    ).toBe(STATE_DISK_LABEL);
    const workspace = await disk.resolve("/workspace");
    expect(workspace.entry).toMatchObject({ mode: "0755", uid: 0, gid: 0 });
    expect(workspace.layer).toBe("upper");
  });

  it("holds every seed entry, owned by root, with the modes the guest's tar gave", () => {
    expect(at("README.md")).toMatchObject({ artifact_type: "file", mode: "0644", size_bytes: 7 });
    expect(at("bin/run.sh")).toMatchObject({ mode: "0755" });
    expect(at("secret")).toMatchObject({ artifact_type: "directory", mode: "0700" });
    expect(at("secret/key")).toMatchObject({ mode: "0600" });
    // The baseline tar (portable) gives the owner rw, as before; set-id and sticky bits
    // are not kept (snapshots never kept them).
    expect(at("readonly.txt")).toMatchObject({ mode: "0644" });
    expect(at("setuid")).toMatchObject({ mode: "0755" });
    expect(at("tmp")).toMatchObject({ artifact_type: "directory", mode: "0755" });
    expect(at(`deep/a/b/c/${SPACED}`)).toMatchObject({ mode: "0640", size_bytes: 5 });
    expect(at("empty")).toMatchObject({ artifact_type: "file", size_bytes: 0 });
    expect(at("emptydir")).toMatchObject({ artifact_type: "directory" });
    for (const entry of entries.values())
      expect([entry.path, entry.uid, entry.gid]).toEqual([entry.path, 0, 0]);
  });

  it("keeps symlinks as links with their targets, never followed", () => {
    expect(at("rel-link")).toMatchObject({ artifact_type: "symlink", link_target: "bin/run.sh" });
    expect(at("abs-link")).toMatchObject({ artifact_type: "symlink", link_target: "/etc/passwd" });
    expect(at("dangling")).toMatchObject({
      artifact_type: "symlink",
      link_target: "missing/target",
    });
    const seedEntries = execFileSync("find", [seed, "-mindepth", "1"])
      .toString()
      .trim()
      .split("\n");
    expect(entries.size).toBe(seedEntries.length);
  });

  it("leaves no stage or partial image behind", () => {
    expect(
      readdirSync(root).filter((name) => name.includes("stage") || name.includes("partial")),
    ).toEqual([]);
    expect(statSync(vmFiles(root).stateDisk).size).toBeGreaterThan(1 << 30); // sparse 8 GiB
  });

  it("refuses a hostile archive and keeps the old disk", async () => {
    const dir = tempDir("pyro-state-disk-bad-");
    const bad = join(dir, "bad.tar");
    // An archive whose entry climbs out of the workspace.
    const evil = join(dir, "evil");
    mkdirSync(evil);
    writeFileSync(join(evil, "x"), "x");
    execFileSync("tar", ["-cf", bad, "-C", evil, "--transform", "s,^x,../escape,", "x"]);
    writeFileSync(vmFiles(dir).stateDisk, "old disk");
    await expect(buildStateDisk(dir, bad, "guest")).rejects.toMatchObject({
      code: "guest_error",
      message: expect.stringMatching(/\.\./),
    });
    expect(readdirSync(dir).sort()).toEqual(["bad.tar", "evil", "state.ext4"]);
    expect(existsSync(join(dir, "..", "escape"))).toBe(false);
    expect(execFileSync("cat", [vmFiles(dir).stateDisk]).toString()).toBe("old disk");
  });

  // Without root, mkfs.ext4 runs in a user namespace that maps the caller to root. Run
  // here as nobody (this tier runs as root, like disk-tools.test.ts).
  it("records root as owner when built by a non-root caller", async () => {
    const dir = tempDir("pyro-state-disk-nobody-");
    const nobody = 65534;
    const script = join(dir, "build.mts");
    const builder = join(process.cwd(), "src/manager/state-disk.ts");
    writeFileSync(
      script,
      `import { buildStateDisk } from ${JSON.stringify(builder)};\n` +
        `await buildStateDisk(${JSON.stringify(dir)}, "seed.tar", "user");\n`,
    );
    copyFileSync(archive, join(dir, "seed.tar"));
    chmodSync(dir, 0o755);
    for (const path of [dir, join(dir, "seed.tar")]) chownSync(path, nobody, nobody);
    const tsx = join(process.cwd(), "node_modules/tsx/dist/cli.mjs");
    execFileSync(
      "setpriv",
      ["--reuid", String(nobody), "--regid", String(nobody), "--clear-groups"].concat([
        process.execPath,
        tsx,
        script,
      ]),
      { env: { PATH: process.env.PATH, HOME: dir }, cwd: dir },
    );
    expect(statSync(vmFiles(dir).stateDisk).uid).toBe(nobody);
    const built = await MergedDisk.open(base, vmFiles(dir).stateDisk);
    const walked = await walkDisk(built, await built.resolve("/workspace"), {
      recursive: true,
      maxEntries: 1000,
    });
    expect(walked.nodes.length).toBe(entries.size);
    for (const { entry } of walked.nodes)
      expect([entry.path, entry.uid, entry.gid]).toEqual([entry.path, 0, 0]);
  });
});
