import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isPyroError } from "../../src/contract/errors.js";
import { Pyro } from "../../src/index.js";
import { runCli } from "../helpers/cli.js";
import { isolatedHome } from "../helpers/guest.js";
import { tempDir } from "../helpers/temp.js";

// The offline disk tools against a real workspace: what the guest saw of its own root
// (find on the overlay) before it stopped is what list, read and export show afterwards.
isolatedHome();
const pyro = new Pyro();
const out = tempDir("pyro-disk-guest-");
let id = "";
let guestView: string[] = [];
let guestHash = "";
let guestBinary = "";

// Runtime mounts (procfs, sysfs, devtmpfs, tmpfs /run) are not on the disk: their mount
// points are compared, their contents are not.
const RUNTIME = ["/proc", "/sys", "/dev", "/run"];
/** find over a root (the guest's `/` or a mount of the image), paths printed from `/`. */
const find = (root: string) => {
  const prefix = root === "/" ? "" : root;
  const prune = RUNTIME.map((p) => `-path ${prefix}${p}`).join(" -o ");
  return `find ${root} -xdev \\( ${prune} \\) -prune -o -printf '/%P\\t%y\\t%s\\t%m\\t%U\\t%G\\t%l\\n'`;
};
const underRuntime = (path: string) => RUNTIME.some((p) => path === p || path.startsWith(`${p}/`));

const sh = async (script: string) => {
  const result = await pyro.execWorkspace({
    workspace_id: id,
    command: ["sh", "-c", script],
    timeout_seconds: 120,
  });
  expect(result.exit_code, result.stderr).toBe(0);
  return result.stdout;
};

/** One line per entry, the fields find prints, in the same form for both sides. */
function line(
  path: string,
  type: string,
  size: number,
  mode: string,
  uid: number,
  gid: number,
  target: string | null,
) {
  const kind = type === "directory" ? "d" : type === "file" ? "f" : type === "symlink" ? "l" : "o";
  return [
    path,
    kind,
    kind === "d" ? "-" : size,
    mode.replace(/^0+(?=.)/, ""),
    uid,
    gid,
    target ?? "",
  ].join("\t");
}

function fromFind(output: string): string[] {
  return output
    .split("\n")
    .filter((l) => l && !l.startsWith("/\t"))
    .map((l) => {
      const [path, type, size, mode, uid, gid, target] = l.split("\t") as string[];
      const kind =
        type === "d" ? "directory" : type === "f" ? "file" : type === "l" ? "symlink" : "other";
      return line(
        path!,
        kind,
        Number(size),
        mode!,
        Number(uid),
        Number(gid),
        type === "l" ? target! : null,
      );
    })
    .sort();
}

beforeAll(async () => {
  ({ workspace_id: id } = await pyro.createWorkspace({
    environment: "debian:12-base",
    mem_mib: 256,
  }));
  await sh(
    [
      "echo hello > /workspace/a.txt",
      "mkdir -p /workspace/src/deep && echo deep > /workspace/src/deep/b.txt",
      "printf 'bin\\000ary\\377' > /workspace/blob.bin",
      "head -c 1048576 /dev/urandom > /workspace/random.dat",
      "ln -s /etc/passwd /workspace/escape",
      "chown 1000:1000 /workspace/a.txt && chmod 600 /workspace/a.txt",
      "rm /etc/motd", // a whiteout over the base
      "rm -rf /etc/apt/apt.conf.d && mkdir /etc/apt/apt.conf.d && echo only > /etc/apt/apt.conf.d/only", // an opaque dir
      "echo changed > /etc/hostname.pyro-test",
      // Planted straight into the upper layer: a runtime-only path on the disk itself.
      "mkdir -p /run/pyro/state/upper/run/pyro-secrets && echo planted > /run/pyro/state/upper/run/pyro-secrets/TOKEN",
    ].join(" && "),
  );
  guestHash = (await sh("sha256sum /workspace/random.dat")).split(" ")[0]!;
  guestBinary = (await sh("base64 -w0 /workspace/blob.bin")).trim();
  guestView = fromFind(await sh(find("/")));
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
});

describe("workspace disk tools", () => {
  it("refuse a started workspace, saying to stop it first", async () => {
    const error = await pyro.listWorkspaceDisk({ workspace_id: id }).catch((e: unknown) => e);
    expect(isPyroError(error) && error.code).toBe("conflict");
    expect(String(error)).toMatch(/stop it first/);
    await pyro.stopWorkspace({ workspace_id: id });
  });

  it("list the whole root as the guest saw it, without runtime-only paths", async () => {
    const listed = await pyro.listWorkspaceDisk({ workspace_id: id, recursive: true });
    expect(listed.truncated).toBe(false);
    expect(listed.entries.filter((e) => e.path.startsWith("/run/pyro"))).toEqual([]);
    const ours = listed.entries
      .filter((e) => !underRuntime(e.path))
      .map((e) => line(e.path, e.artifact_type, e.size_bytes, e.mode, e.uid, e.gid, e.link_target))
      .sort();
    expect(ours).toEqual(guestView);
    expect(ours.some((l) => l.startsWith("/etc/motd\t"))).toBe(false);
    expect(ours.filter((l) => l.startsWith("/etc/apt/apt.conf.d/"))).toHaveLength(1);
  });

  it("read files as the guest wrote them", async () => {
    const text = await pyro.readWorkspaceDisk({ workspace_id: id, path: "/workspace/a.txt" });
    expect(text).toMatchObject({ content: "hello\n", encoding: "utf-8", truncated: false });
    const binary = await pyro.readWorkspaceDisk({ workspace_id: id, path: "/workspace/blob.bin" });
    expect(binary).toMatchObject({ encoding: "base64", content: guestBinary });
    const whole = await pyro.readWorkspaceDisk({
      workspace_id: id,
      path: "/workspace/random.dat",
      max_bytes: 2 << 20,
    });
    const bytes = Buffer.from(whole.content, "base64");
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(guestHash);
    const head = await pyro.readWorkspaceDisk({
      workspace_id: id,
      path: "/workspace/random.dat",
      max_bytes: 10,
    });
    expect(head).toMatchObject({ truncated: true, size_bytes: 1 << 20 });
    expect(Buffer.from(head.content, "base64")).toEqual(bytes.subarray(0, 10));
    const base = await pyro.readWorkspaceDisk({ workspace_id: id, path: "/etc/debian_version" });
    expect(base.content).toMatch(/^12\./);
    const gone = await pyro
      .readWorkspaceDisk({ workspace_id: id, path: "/etc/motd" })
      .catch((e: unknown) => e);
    expect(isPyroError(gone) && gone.code).toBe("not_found");
  });

  it("export an image that mounts on its own and holds the same tree", async () => {
    const output = join(out, "disk.ext4");
    const result = await pyro.exportWorkspaceDisk({ workspace_id: id, output_path: output });
    expect(result.output_path).toBe(output);
    execFileSync("e2fsck", ["-fn", output], { stdio: "ignore" }); // throws unless clean
    const mount = join(out, "mnt");
    mkdirSync(mount);
    execFileSync("mount", ["-o", "ro,loop", output, mount]);
    try {
      const listing = execFileSync("sh", ["-c", find(mount)], {
        encoding: "utf8",
        maxBuffer: 64 << 20,
      });
      // Linux ignores a symlink's permission bits and the host cannot set them (no
      // lchmod): the image's links are 0777 whatever the guest's umask made them.
      const anyLinkMode = (l: string) => l.replace(/^([^\t]*\tl\t[^\t]*\t)\d+/, "$1*");
      expect(fromFind(listing).map(anyLinkMode)).toEqual(guestView.map(anyLinkMode));
      const random = readFileSync(join(mount, "workspace/random.dat"));
      expect(createHash("sha256").update(random).digest("hex")).toBe(guestHash);
    } finally {
      execFileSync("umount", [mount]);
    }
  });

  it("work from the CLI, as JSON", async () => {
    const cli = await runCli([
      "workspace",
      "disk",
      "list",
      id,
      "/workspace/src",
      "--recursive",
      "--json",
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    const listed = JSON.parse(cli.stdout) as { entries: { path: string }[] };
    expect(listed.entries.map((e) => e.path)).toEqual([
      "/workspace/src/deep",
      "/workspace/src/deep/b.txt",
    ]);
  });
});
