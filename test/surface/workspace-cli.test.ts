import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";

const home = isolatedHome();

describe("pyro workspace walk-through as a subprocess", () => {
  it("creates, edits, runs, diffs, snapshots, resets, exports, stops, starts and deletes", async () => {
    const scratch = mkdtempSync(join(tmpdir(), "pyro-ws-cli-"));
    const repo = join(scratch, "repo");
    mkdirSync(join(repo, "src"), { recursive: true });
    writeFileSync(join(repo, "src", "app.py"), "print('hello')\n");
    const ok = async (args: string[]) => {
      const r = await runCli(args);
      expect(r.code, `${args.join(" ")}\n${r.stderr}`).toBe(0);
      return r;
    };

    const id = (
      await ok([
        "workspace",
        "create",
        "debian:12-base",
        "--seed-path",
        repo,
        "--name",
        "fix-bug",
        "--mem-mib",
        "512",
        "--id-only",
      ])
    ).stdout.trim();
    expect(id).toMatch(/^ws_[0-9a-f]{12}$/);
    expect((await ok(["workspace", "file", "list", id, "--recursive"])).stdout).toContain(
      "src/app.py",
    );
    expect((await ok(["workspace", "file", "read", id, "src/app.py"])).stdout).toBe(
      "print('hello')\n",
    );
    const patchFile = join(scratch, "fix.patch");
    writeFileSync(
      patchFile,
      "--- a/src/app.py\n+++ b/src/app.py\n@@ -1 +1 @@\n-print('hello')\n+print('fixed')\n",
    );
    await ok(["workspace", "patch", "apply", id, "--patch-file", patchFile]);
    await ok(["workspace", "file", "write", id, "notes.txt", "--text", "done"]);
    const exec = await runCli([
      "workspace",
      "exec",
      id,
      "--",
      "sh",
      "-c",
      "cat src/app.py notes.txt; exit 3",
    ]);
    expect([exec.code, exec.stdout]).toEqual([3, "print('fixed')\ndone"]);
    expect((await ok(["workspace", "diff", id])).stdout).toContain("+print('fixed')");
    await ok(["workspace", "snapshot", "create", id, "before-refactor"]);
    await ok(["workspace", "file", "write", id, "src/app.py", "--text", "broken"]);
    await ok(["workspace", "reset", id, "--snapshot", "before-refactor"]);
    const out = join(scratch, "out");
    await ok(["workspace", "export", id, "src", "--output", out]);
    expect(readFileSync(join(out, "app.py"), "utf8")).toBe("print('fixed')\n");
    await ok(["workspace", "stop", id]);
    await ok(["workspace", "start", id]);
    const more = join(scratch, "more");
    mkdirSync(more);
    writeFileSync(join(more, "extra.txt"), "x");
    await ok(["workspace", "sync", "push", id, more, "--dest", "src"]);
    await ok(["workspace", "update", id, "--label", "ticket=42"]);
    const list = JSON.parse((await ok(["workspace", "list", "--json"])).stdout);
    expect(list.workspaces[0]).toMatchObject({
      workspace_id: id,
      labels: { ticket: "42" },
      name: "fix-bug",
    });
    const status = JSON.parse((await ok(["workspace", "status", id, "--json"])).stdout);
    expect(status).toMatchObject({ state: "started", reset_count: 1, command_count: 1 });
    expect((await ok(["workspace", "logs", id])).stdout).toContain("#1 [exit 3]");
    await ok(["workspace", "delete", id]);
    expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
  });

  it("gives usage and not-found errors their exit codes", async () => {
    const noCommand = await runCli(["workspace", "exec", "ws_000000000000"]);
    expect(noCommand.code).toBe(125);
    const missing = await runCli(["workspace", "status", "ws_000000000000"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("[not_found]");
    const both = await runCli(["workspace", "file", "write", "ws_000000000000", "a.txt"]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("exactly one of --text and --text-file");
  });
});
