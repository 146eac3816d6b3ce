import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { sleep } from "../../src/util/process.js";
import { runCli } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";

/**
 * Shells on a real VM through the SDK and the CLI: the PTY, the ring and the signals are
 * the guest agent's, the cursors, plain text and idle waits the host's. One workspace for
 * the file; each test opens its own shell. debian:12-build has python3.
 */

const home = isolatedHome();
const pyro = new Pyro();
let workspaceId = "";

beforeAll(async () => {
  const created = await pyro.createWorkspace({ environment: "debian:12-build", mem_mib: 512 });
  workspaceId = created.workspace_id;
});

afterAll(async () => {
  if (workspaceId) await pyro.deleteWorkspace({ workspace_id: workspaceId }).catch(() => {});
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

async function openShell() {
  return (await pyro.openShell({ workspace_id: workspaceId })).shell_id;
}

/**
 * Reads plain text from `cursor` until `pattern` shows up in it (or 60 s pass), as a model
 * would: short idle waits, each read from the previous next_cursor.
 */
async function readUntil(shellId: string, cursor: number, pattern: RegExp) {
  let text = "";
  let next = cursor;
  const deadline = Date.now() + 60_000;
  while (!pattern.test(text) && Date.now() < deadline) {
    const read = await pyro.readShell({
      workspace_id: workspaceId,
      shell_id: shellId,
      cursor: next,
      plain: true,
      wait_for_idle_ms: 200,
    });
    text += read.output;
    next = read.next_cursor;
  }
  expect(text).toMatch(pattern);
  return { text, next };
}

function shellRecords(): string[] {
  const dir = join(home, "workspaces", workspaceId, "shells");
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

async function write(shellId: string, input: string) {
  await pyro.writeShell({ workspace_id: workspaceId, shell_id: shellId, input });
}

describe("shells in a real workspace", () => {
  it("runs a python3 REPL: 1+1 gives 2", async () => {
    const shell = await openShell();
    const prompt = await readUntil(shell, 0, /# $|\$ $/m);
    await write(shell, "python3 -q");
    const repl = await readUntil(shell, prompt.next, />>> $/);
    await write(shell, "1+1");
    const answer = await readUntil(shell, repl.next, /^2$/m);
    expect(answer.text).toMatch(/1\+1\n2\n>>> /);
  });

  it("plain strips the escape codes the raw output has, and cursors continue", async () => {
    const shell = await openShell();
    const prompt = await readUntil(shell, 0, /[#$] $/);
    await write(shell, "printf '\\033[1;31mred\\033[0m-%s\\n' $((20+1))");
    const done = await readUntil(shell, prompt.next, /red-21\n/);
    const raw = await pyro.readShell({
      workspace_id: workspaceId,
      shell_id: shell,
      cursor: prompt.next,
    });
    expect(raw.output).toContain("\x1b[1;31mred\x1b[0m-21");
    expect(done.text.includes("\x1b")).toBe(false);
    // The next read starts where the last one ended: only the new command's output.
    await write(shell, "echo second-$((40+2))");
    const second = await readUntil(shell, done.next, /second-42\n/);
    expect(second.text).not.toContain("red-21");
  });

  it("reports truncated once the output outgrew the 1 MiB ring, and the shell goes on", async () => {
    const shell = await openShell();
    const prompt = await readUntil(shell, 0, /[#$] $/);
    await write(shell, "yes | head -c 3M; echo flood-$((6*7))");
    let read = await pyro.readShell({
      workspace_id: workspaceId,
      shell_id: shell,
      cursor: prompt.next,
      max_chars: 1,
      wait_for_idle_ms: 1_500,
    });
    for (let i = 0; i < 20 && !read.truncated; i++) {
      read = await pyro.readShell({
        workspace_id: workspaceId,
        shell_id: shell,
        cursor: prompt.next,
        max_chars: 1,
        wait_for_idle_ms: 1_500,
      });
    }
    expect(read.truncated).toBe(true);
    expect(read.cursor).toBeGreaterThan(prompt.next + (2 << 20));
    const tail = await readUntil(shell, read.cursor, /flood-42\n/);
    expect(tail.text).toMatch(/^y$/m);
  });

  it("INT interrupts sleep 100 and the shell answers again", async () => {
    const shell = await openShell();
    const prompt = await readUntil(shell, 0, /[#$] $/);
    await write(shell, "sleep 100; echo slept");
    const started = Date.now();
    await readUntil(shell, prompt.next, /sleep 100/);
    await pyro.signalShell({ workspace_id: workspaceId, shell_id: shell });
    await write(shell, "echo after-$((1+1))");
    const after = await readUntil(shell, prompt.next, /^after-2$/m);
    expect(after.text).not.toMatch(/^slept$/m);
    expect(Date.now() - started).toBeLessThan(100_000);
  });

  it("a full-screen program (curses) does not break reads", async () => {
    const shell = await openShell();
    const prompt = await readUntil(shell, 0, /[#$] $/);
    await write(
      shell,
      // The typed line never holds the text the program draws, so only the program shows it.
      `python3 -c 'import curses; curses.wrapper(lambda s: (s.addstr(3, 5, "FULL" "-SCREEN"), s.refresh(), curses.napms(300)))'; echo after-fs-$((3*3))`,
    );
    const raw = await readUntil(shell, prompt.next, /after-fs-9/);
    expect(raw.text).toContain("FULL-SCREEN");
    await write(shell, "echo still-$((4+4))");
    await readUntil(shell, raw.next, /^still-8$/m);
  });

  it("records how the shell exited, and keeps its last output readable", async () => {
    const shell = await openShell();
    const prompt = await readUntil(shell, 0, /[#$] $/);
    await write(shell, "echo last-words; exit 3");
    const end = await readUntil(shell, prompt.next, /last-words\n/);
    let read = await pyro.readShell({ workspace_id: workspaceId, shell_id: shell, cursor: 0 });
    for (let i = 0; i < 50 && read.state !== "exited"; i++) {
      read = await pyro.readShell({
        workspace_id: workspaceId,
        shell_id: shell,
        cursor: end.next,
        wait_for_idle_ms: 200,
      });
    }
    expect(read).toMatchObject({ state: "exited", exit_code: 3 });
    const again = await pyro.readShell({ workspace_id: workspaceId, shell_id: shell, plain: true });
    expect(again.output).toContain("last-words");
    await expect(write(shell, "echo too late")).rejects.toMatchObject({ code: "conflict" });
  });

  it("close ends the shell's processes", async () => {
    const shell = await openShell();
    const prompt = await readUntil(shell, 0, /[#$] $/);
    await write(
      shell,
      "echo $$ > /workspace/.shell-pid; sleep 1000 & echo $! >> /workspace/.shell-pid; echo saved",
    );
    await readUntil(shell, prompt.next, /^saved$/m);
    await pyro.closeShell({ workspace_id: workspaceId, shell_id: shell });
    await expect(
      pyro.readShell({ workspace_id: workspaceId, shell_id: shell }),
    ).rejects.toMatchObject({ code: "not_found" });
    const alive = async () =>
      (
        await pyro.execWorkspace({
          workspace_id: workspaceId,
          command: ["sh", "-c", "for p in $(cat .shell-pid); do test -d /proc/$p && echo $p; done"],
        })
      ).stdout.trim();
    let left = await alive();
    for (let i = 0; i < 20 && left !== ""; i++) {
      await sleep(250);
      left = await alive();
    }
    expect(left).toBe("");
  });

  it("refuses unknown shell ids and bad sizes before any guest work", async () => {
    await expect(
      pyro.readShell({ workspace_id: workspaceId, shell_id: "sh-00000000" }),
    ).rejects.toMatchObject({ code: "not_found" });
    const before = shellRecords();
    const cli = await runCli(["workspace", "shell", "open", workspaceId, "--cols", "-5"], {
      PYRO_HOME: home,
    });
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain("invalid_argument");
    expect(shellRecords()).toEqual(before);
  });

  it("a shell opened by one CLI process is written and read by others", async () => {
    const env = { PYRO_HOME: home };
    const opened = await runCli(["workspace", "shell", "open", workspaceId, "--id-only"], env);
    expect(opened.code).toBe(0);
    const shell = opened.stdout.trim();
    expect(shell).toMatch(/^sh-[0-9a-f]{8}$/);
    const wrote = await runCli(
      ["workspace", "shell", "write", workspaceId, shell, "--input", "echo cli-$((2+3))"],
      env,
    );
    expect(wrote.code).toBe(0);
    let output = "";
    let cursor = 0;
    for (let i = 0; i < 20 && !/^cli-5$/m.test(output); i++) {
      const read = await runCli(
        [
          "workspace",
          "shell",
          "read",
          workspaceId,
          shell,
          "--plain",
          "--wait-for-idle-ms",
          "300",
          "--cursor",
          String(cursor),
          "--json",
        ],
        env,
      );
      expect(read.code).toBe(0);
      const result = JSON.parse(read.stdout) as { output: string; next_cursor: number };
      output += result.output;
      cursor = result.next_cursor;
    }
    expect(output).toMatch(/^cli-5$/m);
    // --plain left no escape code of the ones bash's prompt is drawn with.
    const raw = await runCli(["workspace", "shell", "read", workspaceId, shell, "--json"], env);
    expect((JSON.parse(raw.stdout) as { output: string }).output).toContain("\x1b");
    expect(output.includes("\x1b")).toBe(false);
    const closed = await runCli(["workspace", "shell", "close", workspaceId, shell], env);
    expect(closed.code).toBe(0);
  });

  it("workspace stop ends every shell and clears their records", async () => {
    const shell = await openShell();
    await pyro.stopWorkspace({ workspace_id: workspaceId });
    expect(shellRecords()).toEqual([]);
    await pyro.startWorkspace({ workspace_id: workspaceId });
    await expect(
      pyro.readShell({ workspace_id: workspaceId, shell_id: shell }),
    ).rejects.toMatchObject({ code: "not_found" });
  });
});
