import {
  mkdtempSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
  existsSync,
  readlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { runCommand } from "../../src/util/process.js";
import { runCli } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";

const home = isolatedHome();
const pyro = new Pyro();
const scratch = mkdtempSync(join(tmpdir(), "pyro-ws-test-"));
let id = "";

/** A small project tree to seed from. */
function makeSeed(): string {
  const seed = join(scratch, "seed");
  mkdirSync(join(seed, "src"), { recursive: true });
  writeFileSync(join(seed, "README.md"), "# demo\n");
  writeFileSync(join(seed, "src", "app.py"), "def add(a, b):\n    return a - b\n");
  writeFileSync(join(seed, "src", "data.bin"), Buffer.from([0, 1, 2, 255]));
  symlinkSync("app.py", join(seed, "src", "link.py"));
  return seed;
}

beforeAll(async () => {
  const created = await pyro.createWorkspace({
    environment: "debian:12-base",
    seed_path: makeSeed(),
    name: "demo",
    labels: { ticket: "7" },
    mem_mib: 512,
  });
  id = created.workspace_id;
  expect(created).toMatchObject({
    state: "started",
    name: "demo",
    labels: { ticket: "7" },
    workspace_seed: { mode: "directory" },
    command_count: 0,
  });
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

describe("workspace through the SDK, on a real VM", () => {
  it("exec runs in /workspace, numbers commands and keeps a journal", async () => {
    const first = await pyro.execWorkspace({
      workspace_id: id,
      command: ["sh", "-c", "pwd; cat README.md"],
    });
    expect(first).toMatchObject({
      exit_code: 0,
      stdout: "/workspace\n# demo\n",
      sequence: 1,
      cwd: "/workspace",
    });
    const second = await pyro.execWorkspace({ workspace_id: id, command: ["ls"], cwd: "src" });
    expect(second.stdout.split("\n").filter(Boolean).sort()).toEqual([
      "app.py",
      "data.bin",
      "link.py",
    ]);
    expect(second.sequence).toBe(2);
    const logs = await pyro.logsWorkspace({ workspace_id: id });
    expect(logs.entries.map((e) => e.sequence)).toEqual([1, 2]);
    expect((await pyro.statusWorkspace({ workspace_id: id })).command_count).toBe(2);
  });

  it("lists, reads and writes files, refusing escapes and binaries", async () => {
    const listing = await pyro.listWorkspaceFiles({ workspace_id: id, recursive: true });
    const byPath = Object.fromEntries(listing.entries.map((e) => [e.path, e]));
    expect(byPath["src/link.py"]).toMatchObject({
      artifact_type: "symlink",
      link_target: "app.py",
    });
    expect(byPath["src"]?.artifact_type).toBe("directory");
    const read = await pyro.readWorkspaceFile({ workspace_id: id, path: "src/app.py" });
    expect(read).toMatchObject({ content: "def add(a, b):\n    return a - b\n", truncated: false });
    const partial = await pyro.readWorkspaceFile({
      workspace_id: id,
      path: "/workspace/src/app.py",
      max_bytes: 5,
    });
    expect(partial).toMatchObject({ content: "def a", truncated: true, size_bytes: 32 });
    await expect(
      pyro.readWorkspaceFile({ workspace_id: id, path: "src/data.bin" }),
    ).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("binary"),
    });
    await expect(
      pyro.readWorkspaceFile({ workspace_id: id, path: "../etc/passwd" }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(
      pyro.readWorkspaceFile({ workspace_id: id, path: "/etc/passwd" }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    await pyro.execWorkspace({ workspace_id: id, command: ["ln", "-s", "/etc", "escape"] });
    await expect(
      pyro.readWorkspaceFile({ workspace_id: id, path: "escape/passwd" }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(
      pyro.writeWorkspaceFile({ workspace_id: id, path: "escape/evil", text: "x" }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    const written = await pyro.writeWorkspaceFile({
      workspace_id: id,
      path: "notes/today.txt",
      text: "done\n",
    });
    expect(written).toEqual({ path: "/workspace/notes/today.txt", bytes_written: 5 });
    await expect(
      pyro.writeWorkspaceFile({
        workspace_id: id,
        path: "big.txt",
        text: "x".repeat((1 << 20) + 1),
      }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    await pyro.execWorkspace({ workspace_id: id, command: ["rm", "escape"] });
  });

  it("applies a multi-file patch atomically and names the failing hunk", async () => {
    const patch = [
      "--- a/src/app.py",
      "+++ b/src/app.py",
      "@@ -1,2 +1,2 @@",
      " def add(a, b):",
      "-    return a - b",
      "+    return a + b",
      "--- /dev/null",
      "+++ b/src/new.txt",
      "@@ -0,0 +1 @@",
      "+hello",
      "",
    ].join("\n");
    const applied = await pyro.applyWorkspacePatch({ workspace_id: id, patch });
    expect(applied.summary).toEqual({ total: 2, added: 1, modified: 1, deleted: 0 });
    const bad = [
      "--- a/README.md",
      "+++ b/README.md",
      "@@ -1 +1 @@",
      "-# not demo",
      "+# x",
      "",
    ].join("\n");
    const both = `--- /dev/null\n+++ b/src/other.txt\n@@ -0,0 +1 @@\n+x\n${bad}`;
    await expect(pyro.applyWorkspacePatch({ workspace_id: id, patch: both })).rejects.toMatchObject(
      {
        code: "invalid_argument",
        message: expect.stringContaining("README.md"),
      },
    );
    const files = await pyro.listWorkspaceFiles({ workspace_id: id, path: "src" });
    expect(files.entries.map((e) => e.path)).not.toContain("src/other.txt");
    const run = await pyro.execWorkspace({
      workspace_id: id,
      command: ["sh", "-c", "cat src/app.py src/new.txt"],
    });
    expect(run.stdout).toBe("def add(a, b):\n    return a + b\nhello\n");
  });

  it("diffs against the baseline with a patch that `patch -p1` applies to it", async () => {
    const diff = await pyro.diffWorkspace({ workspace_id: id });
    expect(diff.changed).toBe(true);
    const statuses = Object.fromEntries(diff.entries.map((e) => [e.path, e.status]));
    expect(statuses).toMatchObject({
      "src/app.py": "modified",
      "src/new.txt": "added",
      "notes/today.txt": "added",
    });
    const copy = join(scratch, "baseline-copy");
    await runCommand("cp", ["-a", join(scratch, "seed"), copy]);
    const patchFile = join(scratch, "diff.patch");
    writeFileSync(patchFile, diff.patch);
    const applied = await runCommand("patch", ["-p1", "-d", copy, "-i", patchFile]);
    expect(applied.code).toBe(0);
    expect(readFileSync(join(copy, "src", "app.py"), "utf8")).toContain("a + b");
    expect(readFileSync(join(copy, "notes", "today.txt"), "utf8")).toBe("done\n");
  });

  it("exports files and directories to new host paths only", async () => {
    const out = join(scratch, "exported-src");
    const result = await pyro.exportWorkspace({ workspace_id: id, path: "src", output_path: out });
    expect(result.artifact_type).toBe("directory");
    expect(readFileSync(join(out, "new.txt"), "utf8")).toBe("hello\n");
    expect(readlinkSync(join(out, "link.py"))).toBe("app.py");
    await expect(
      pyro.exportWorkspace({ workspace_id: id, path: "src", output_path: out }),
    ).rejects.toMatchObject({ code: "conflict" });
    const file = join(scratch, "readme-out.md");
    await pyro.exportWorkspace({ workspace_id: id, path: "README.md", output_path: file });
    expect(readFileSync(file, "utf8")).toBe("# demo\n");
  });

  it("snapshots and resets to a snapshot or the baseline", async () => {
    await pyro.createSnapshot({ workspace_id: id, snapshot_name: "patched" });
    await expect(
      pyro.createSnapshot({ workspace_id: id, snapshot_name: "bad name" }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    await pyro.writeWorkspaceFile({ workspace_id: id, path: "src/app.py", text: "broken\n" });
    const listed = await pyro.listSnapshots({ workspace_id: id });
    expect(listed.snapshots.map((s) => [s.snapshot_name, s.kind])).toEqual([
      ["baseline", "baseline"],
      ["patched", "named"],
    ]);
    await expect(
      pyro.deleteSnapshot({ workspace_id: id, snapshot_name: "baseline" }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    const reset = await pyro.resetWorkspace({ workspace_id: id, snapshot: "patched" });
    expect(reset).toMatchObject({ reset_count: 1, state: "started", workspace_id: id });
    expect(
      (await pyro.readWorkspaceFile({ workspace_id: id, path: "src/app.py" })).content,
    ).toContain("a + b");
    await pyro.resetWorkspace({ workspace_id: id });
    expect(
      (await pyro.readWorkspaceFile({ workspace_id: id, path: "src/app.py" })).content,
    ).toContain("a - b");
    expect((await pyro.diffWorkspace({ workspace_id: id })).changed).toBe(false);
    await pyro.deleteSnapshot({ workspace_id: id, snapshot_name: "patched" });
  });

  it("sync push copies host files in under dest", async () => {
    const more = join(scratch, "more");
    mkdirSync(more);
    writeFileSync(join(more, "extra.txt"), "extra\n");
    const pushed = await pyro.pushWorkspaceSync({
      workspace_id: id,
      source_path: more,
      dest: "src/more",
    });
    expect(pushed).toMatchObject({ dest: "/workspace/src/more", mode: "directory" });
    expect(
      (await pyro.readWorkspaceFile({ workspace_id: id, path: "src/more/extra.txt" })).content,
    ).toBe("extra\n");
    await expect(
      pyro.pushWorkspaceSync({ workspace_id: id, source_path: join(scratch, "nope") }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
  });

  it("the CLI prints guest file names, errors and logs with control characters escaped", async () => {
    // A name that would set the terminal's title, and output that would clear the screen.
    await pyro.execWorkspace({
      workspace_id: id,
      command: ["sh", "-c", 'touch "$(printf "evil\\033]0;pwned\\007.txt")"; printf "\\033[2Jout"'],
    });
    const list = await runCli(["workspace", "file", "list", id]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/ {2}evil\\x1b\]0;pwned\\x07\.txt\n/);
    const missing = await runCli(["workspace", "file", "read", id, "evil\x1b]0;pwned\x07.nope"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/^pyro: error \[\w+\]: .*evil\\x1b\]0;pwned\\x07\.nope/);
    const logs = await runCli(["workspace", "logs", id, "--limit", "1"]);
    expect(logs.stdout).toContain("\\x1b[2Jout");
    for (const output of [list, missing, logs]) {
      expect(output.stdout + output.stderr).not.toContain("\x1b");
      expect(output.stdout + output.stderr).not.toContain("\x07");
    }
    await pyro.execWorkspace({ workspace_id: id, command: ["sh", "-c", "rm -f evil*"] });
  });

  it("stop keeps the files, start brings them back; update sets name and labels", async () => {
    await pyro.writeWorkspaceFile({ workspace_id: id, path: "kept.txt", text: "still here\n" });
    expect((await pyro.stopWorkspace({ workspace_id: id })).state).toBe("stopped");
    await expect(pyro.execWorkspace({ workspace_id: id, command: ["true"] })).rejects.toMatchObject(
      { code: "conflict", message: expect.stringContaining("workspace start") },
    );
    expect((await pyro.startWorkspace({ workspace_id: id })).state).toBe("started");
    expect((await pyro.readWorkspaceFile({ workspace_id: id, path: "kept.txt" })).content).toBe(
      "still here\n",
    );
    const updated = await pyro.updateWorkspace({
      workspace_id: id,
      name: "renamed",
      labels: { team: "a" },
      clear_labels: ["ticket"],
    });
    // Exact label sets: toMatchObject would also accept a "ticket" that was never cleared.
    expect(updated.name).toBe("renamed");
    expect(updated.labels).toEqual({ team: "a" });
    expect((await pyro.statusWorkspace({ workspace_id: id })).labels).toEqual({ team: "a" });
    const listed = (await pyro.listWorkspaces()).workspaces.find((w) => w.workspace_id === id);
    expect(listed?.labels).toEqual({ team: "a" });
  });

  it("a VMM killed mid-work leaves a failed workspace that starts again with its files", async () => {
    await pyro.writeWorkspaceFile({ workspace_id: id, path: "before-crash.txt", text: "saved\n" });
    await pyro.execWorkspace({
      workspace_id: id,
      command: ["sh", "-c", "echo via-exec > exec-file.txt"],
    });
    const shim = JSON.parse(readFileSync(join(home, "workspaces", id, "shim.json"), "utf8"));
    const writing = pyro
      .execWorkspace({
        workspace_id: id,
        command: ["sh", "-c", "while :; do date >> busy.log; done"],
        timeout_seconds: 60,
      })
      .catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 500));
    process.kill(shim.vmm_pid, "SIGKILL");
    expect(await writing).toBeInstanceOf(Error);
    expect(await eventually(() => !existsSync(`/proc/${shim.shim_pid}`))).toBe(true);
    expect((await pyro.statusWorkspace({ workspace_id: id })).state).toBe("failed");
    await pyro.startWorkspace({ workspace_id: id });
    expect(
      (await pyro.readWorkspaceFile({ workspace_id: id, path: "before-crash.txt" })).content,
    ).toBe("saved\n");
    expect(
      (await pyro.readWorkspaceFile({ workspace_id: id, path: "exec-file.txt" })).content,
    ).toBe("via-exec\n");
  });
});

describe("workspace bad input", () => {
  it("validates the seed path before any VM work", async () => {
    await expect(
      pyro.createWorkspace({ environment: "debian:12-base", seed_path: "/does/not/exist" }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(
      pyro.createWorkspace({
        environment: "debian:12-base",
        network_policy: "off",
        allowed_domains: ["example.org"],
      }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(pyro.statusWorkspace({ workspace_id: "ws_000000000000" })).rejects.toMatchObject({
      code: "not_found",
    });
    expect((await pyro.listWorkspaces()).workspaces.map((w) => w.workspace_id)).toEqual([id]);
  });
});
