import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import { capturedEntry, type CapturedTree } from "../../src/manager/workspace-guest.js";
import { extractArchive, packTree } from "../../src/workspace/archive.js";
import { countTree, replacePath } from "../../src/workspace/host-tree.js";
import type { TreeEntry } from "../../src/workspace/tree.js";

let scratch: string;
/** A host directory a hostile guest's archive points its links at. */
let host: string;
let captured: CapturedTree;

beforeEach(async () => {
  scratch = await mkdtemp(join(tmpdir(), "pyro-host-tree-"));
  host = join(scratch, "host");
  await mkdir(join(host, "src"), { recursive: true });
  await writeFile(join(host, "src", "main.py"), "host original\n");
  const root = join(scratch, "capture");
  await mkdir(root);
  captured = { root, cleanup: () => rm(root, { recursive: true, force: true }) };
});

afterEach(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** Extracts `tree` the way a capture does: a plain tar from the guest. */
async function capture(entries: [string, TreeEntry][]): Promise<void> {
  await extractArchive(Readable.from([packTree(new Map(entries))]), captured.root, {
    maxEntries: 100,
    maxTotalBytes: 1 << 20,
  });
}

async function refusal(relative: string): Promise<PyroError> {
  const error = await capturedEntry(captured, relative).catch((e: unknown) => e);
  expect(error, `${relative} was accepted`).toBeInstanceOf(PyroError);
  return error as PyroError;
}

describe("capturedEntry finds an exported path without following the capture's links", () => {
  it("refuses a path that goes through a symlink to a host directory", async () => {
    await capture([["proj", { type: "symlink", target: host }]]);
    const error = await refusal("proj/src/main.py");
    expect(error.code).toBe("guest_error");
    expect(error.message).toBe(
      "the archive from the guest has a symlink at /workspace/proj, where a directory was expected (asked for /workspace/proj/src/main.py); nothing was exported",
    );
    expect(await readFile(join(host, "src", "main.py"), "utf8")).toBe("host original\n");
  });

  it("refuses a relative link that climbs out of the capture", async () => {
    await capture([
      ["a", { type: "directory", mode: 0o755 }],
      ["a/up", { type: "symlink", target: "../../host" }],
    ]);
    expect((await refusal("a/up/src")).message).toContain("a symlink at /workspace/a/up,");
  });

  it("refuses to export a symlink itself (data -> /usr), saying what to export instead", async () => {
    await capture([["data", { type: "symlink", target: "/usr" }]]);
    const error = await refusal("data");
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toContain("/workspace/data is a symlink; export the path it points to");
  });

  it("says when the archive lacks the path or holds a file where a directory should be", async () => {
    await capture([["f", { type: "file", content: Buffer.from("x"), mode: 0o644 }]]);
    expect((await refusal("missing/x")).message).toContain("does not hold /workspace/missing");
    expect((await refusal("f/x")).message).toContain("has a file at /workspace/f, where");
  });

  it("finds files and directories, links inside them staying inert", async () => {
    await capture([
      ["proj", { type: "directory", mode: 0o755 }],
      ["proj/main.py", { type: "file", content: Buffer.from("print(1)\n"), mode: 0o644 }],
      ["proj/host", { type: "symlink", target: host }],
    ]);
    const file = await capturedEntry(captured, "proj/main.py");
    expect(file.path).toBe(join(captured.root, "proj", "main.py"));
    expect(file.stats.isFile()).toBe(true);
    expect((await capturedEntry(captured, "proj")).stats.isDirectory()).toBe(true);
    expect((await capturedEntry(captured, "")).path).toBe(captured.root);
  });
});

describe("countTree", () => {
  it("counts a link below the top as one entry and never walks into it", async () => {
    const dir = join(scratch, "tree");
    await mkdir(dir);
    await writeFile(join(dir, "a.txt"), "12345");
    await symlink(host, join(dir, "host"));
    await symlink("/usr", join(dir, "usr"));
    expect(await countTree(dir)).toEqual({ entries: 3, bytes: 5 });
    expect(await countTree(join(dir, "a.txt"))).toEqual({ entries: 1, bytes: 5 });
  });
});

// /dev/shm is a tmpfs on Linux: a rename there from the temp dir fails with EXDEV, which
// is the path the copy fallback takes.
const otherDevice = existsSync("/dev/shm") && statSync("/dev/shm").dev !== statSync(tmpdir()).dev;

describe.runIf(otherDevice)("replacePath across file systems", () => {
  let away: string;
  beforeEach(async () => {
    away = await mkdtemp("/dev/shm/pyro-host-tree-");
  });
  afterEach(async () => {
    await rm(away, { recursive: true, force: true });
  });

  it("copies links as links, follows none, and drops group/other write bits", async () => {
    const source = join(scratch, "export");
    await mkdir(join(source, "sub"), { recursive: true });
    await writeFile(join(source, "sub", "f.txt"), "content");
    await chmod(join(source, "sub", "f.txt"), 0o777);
    await chmod(join(source, "sub"), 0o777);
    await symlink(host, join(source, "host"));
    await symlink("../host/src/main.py", join(source, "sub", "rel"));
    const output = join(away, "out");
    await replacePath(source, output);

    expect(await readlink(join(output, "host"))).toBe(host);
    expect(await readlink(join(output, "sub", "rel"))).toBe("../host/src/main.py");
    expect(await readFile(join(output, "sub", "f.txt"), "utf8")).toBe("content");
    expect((await lstat(join(output, "sub", "f.txt"))).mode & 0o7777).toBe(0o755);
    expect((await lstat(join(output, "sub"))).mode & 0o7777).toBe(0o755);
    expect(await readdir(join(host, "src"))).toEqual(["main.py"]);
    expect(await readFile(join(host, "src", "main.py"), "utf8")).toBe("host original\n");
  });

  it("keeps what was at the output, and leaves no half copy, when the copy fails", async () => {
    const source = join(scratch, "export");
    await mkdir(source);
    await writeFile(join(source, "a.txt"), "a");
    execFileSync("mkfifo", [join(source, "z-fifo")]);
    const output = join(away, "out");
    await writeFile(output, "precious");
    const error = await replacePath(source, output).catch((e: unknown) => e);
    expect(String(error)).toContain("is not a file, directory or symlink");
    expect(await readFile(output, "utf8")).toBe("precious");
    expect(await readdir(away)).toEqual(["out"]);
  });
});
