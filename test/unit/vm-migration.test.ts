import { existsSync, readFileSync, statSync, type Stats } from "node:fs";
import { createConnection } from "node:net";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { restoreVmState, saveVmState, type QmpCommands } from "../../src/vmm/migration.js";
import { tempDir } from "../helpers/temp.js";

/**
 * A stand-in for QEMU's side of a save: it records the QMP commands and, on `migrate`,
 * connects to the URI's socket and sends `stream` (the real thing is in
 * test/guest/vm-restore.test.ts).
 */
function fakeQemu(stream: Buffer, outcome: "completed" | "failed" | "active" = "completed") {
  const commands: string[] = [];
  let sent = false;
  let socketPath = "";
  const qmp: QmpCommands = {
    execute: async (command, args) => {
      commands.push(args ? `${command} ${JSON.stringify(args)}` : command);
      if (command === "migrate") {
        socketPath = String(args?.uri).replace(/^unix:/, "");
        await new Promise<void>((resolve, reject) => {
          const socket = createConnection(socketPath, () => socket.end(stream, resolve));
          socket.on("error", reject);
        });
        sent = true;
      }
      if (command === "query-migrate")
        return sent && outcome !== "active"
          ? { status: outcome, ...(outcome === "failed" ? { "error-desc": "disk gone" } : {}) }
          : { status: "active" };
      return {};
    },
  };
  return { qmp, commands, socketPath: () => socketPath };
}

const connect = (path: string) =>
  new Promise<void>((resolve, reject) => {
    const socket = createConnection(path, () => {
      socket.destroy();
      resolve();
    });
    socket.on("error", reject);
  });

describe("saving a VM's state", () => {
  it("stops the guest, leaves shared RAM out and writes QEMU's stream to the file", async () => {
    const dir = tempDir("pyro-save-test-");
    const path = join(dir, "vmstate");
    const stream = Buffer.alloc(200_000, 0x5a);
    const qemu = fakeQemu(stream);
    await saveVmState(qemu.qmp, path, undefined, { pollMs: 1 });
    expect(readFileSync(path).equals(stream)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(qemu.commands.slice(0, 3)).toEqual([
      "stop",
      'migrate-set-capabilities {"capabilities":[{"capability":"x-ignore-shared","state":true}]}',
      `migrate {"uri":"unix:${qemu.socketPath()}"}`,
    ]);
    // The listening socket lived in a private directory, gone once the save is done.
    expect(existsSync(dirname(qemu.socketPath()))).toBe(false);
  });

  it("a stream over the cap fails the save and leaves no file", async () => {
    const dir = tempDir("pyro-save-test-");
    const path = join(dir, "vmstate");
    const qemu = fakeQemu(Buffer.alloc(64 * 1024, 1), "active");
    await expect(
      saveVmState(qemu.qmp, path, undefined, { pollMs: 1, maxStateBytes: 1000 }),
    ).rejects.toMatchObject({ code: "unavailable", message: /over 1000 bytes/ });
    expect(existsSync(path)).toBe(false);
  });

  it("a migration QEMU reports failed is an error with QEMU's reason, and no file", async () => {
    const dir = tempDir("pyro-save-test-");
    const path = join(dir, "vmstate");
    const qemu = fakeQemu(Buffer.from("partial"), "failed");
    await expect(saveVmState(qemu.qmp, path, undefined, { pollMs: 1 })).rejects.toMatchObject({
      code: "unavailable",
      message: "saving the VM's state failed: disk gone",
    });
    expect(existsSync(path)).toBe(false);
    expect(existsSync(dirname(qemu.socketPath()))).toBe(false);
  });

  it("a migration that never completes times out", async () => {
    const dir = tempDir("pyro-save-test-");
    const qemu = fakeQemu(Buffer.from("x"), "active");
    await expect(
      saveVmState(qemu.qmp, join(dir, "vmstate"), undefined, { pollMs: 1, timeoutMs: 50 }),
    ).rejects.toMatchObject({ code: "timeout" });
    expect(existsSync(join(dir, "vmstate"))).toBe(false);
  });

  it("a QEMU whose monitor stops answering fails the save at the deadline", async () => {
    const dir = tempDir("pyro-save-test-");
    const hung: QmpCommands = { execute: () => new Promise(() => {}) };
    await expect(
      saveVmState(hung, join(dir, "vmstate"), undefined, { timeoutMs: 50 }),
    ).rejects.toMatchObject({ code: "timeout", message: /saving the VM's state/ });
    expect(existsSync(join(dir, "vmstate"))).toBe(false);
  });

  it.runIf(process.getuid?.() === 0)(
    "gives QEMU's uid its socket only: the directory stays root's and cannot be written by it",
    async () => {
      const dir = tempDir("pyro-save-test-");
      const owner = { uid: 4_242_420, gid: 4_242_420 };
      let seen: { dir: Stats; socket: Stats } | undefined;
      const qemu = fakeQemu(Buffer.from("state"));
      const execute = qemu.qmp.execute;
      qemu.qmp.execute = async (command, args) => {
        if (command === "migrate") {
          const socket = String(args?.uri).replace(/^unix:/, "");
          seen = { dir: statSync(dirname(socket)), socket: statSync(socket) };
        }
        return execute(command, args);
      };
      await saveVmState(qemu.qmp, join(dir, "vmstate"), owner, { pollMs: 1 });
      expect(seen?.dir.uid).toBe(0);
      expect((seen?.dir.mode ?? 0) & 0o777).toBe(0o711);
      expect(seen?.socket.uid).toBe(owner.uid);
      expect((seen?.socket.mode ?? 0) & 0o777).toBe(0o600);
    },
  );

  it("takes one connection: a second one is refused and cannot add to the state", async () => {
    const dir = tempDir("pyro-save-test-");
    const path = join(dir, "vmstate");
    let second: Promise<string> = Promise.resolve("not tried");
    const inner = fakeQemu(Buffer.from("the state"));
    const qmp: QmpCommands = {
      execute: async (command, args) => {
        const result = await inner.qmp.execute(command, args);
        if (command === "migrate")
          second = connect(inner.socketPath()).then(
            () => "connected",
            (error: NodeJS.ErrnoException) => String(error.code),
          );
        return result;
      },
    };
    await saveVmState(qmp, path, undefined, { pollMs: 1 });
    expect(await second).toMatch(/^(ECONNREFUSED|ENOENT)$/);
    expect(readFileSync(path, "utf8")).toBe("the state");
  });
});

describe("restoring a VM's state", () => {
  /** A destination QEMU: `query-migrate` goes active → completed; then the given run state. */
  function incoming(runState: string, outcome = "completed") {
    const commands: string[] = [];
    let polls = 0;
    const qmp: QmpCommands = {
      execute: async (command, args) => {
        commands.push(args ? `${command} ${JSON.stringify(args)}` : command);
        if (command === "query-migrate")
          return (polls += 1) < 3 ? { status: "active" } : { status: outcome };
        if (command === "query-status") return { status: runState };
        return {};
      },
    };
    return { qmp, commands };
  }

  it("sets the capability before the incoming migration, loads from the fd, then continues", async () => {
    const qemu = incoming("paused");
    await restoreVmState(qemu.qmp, 12, { pollMs: 1 });
    expect(qemu.commands).toEqual([
      'migrate-set-capabilities {"capabilities":[{"capability":"x-ignore-shared","state":true}]}',
      'migrate-incoming {"uri":"fd:12"}',
      "query-migrate",
      "query-migrate",
      "query-migrate",
      "query-status",
      "cont",
    ]);
  });

  it("a guest already running is not sent cont", async () => {
    const qemu = incoming("running");
    await restoreVmState(qemu.qmp, 12, { pollMs: 1 });
    expect(qemu.commands.at(-1)).toBe("query-status");
  });

  it("a QEMU whose monitor stops answering fails the restore at the deadline", async () => {
    const hung: QmpCommands = { execute: () => new Promise(() => {}) };
    await expect(restoreVmState(hung, 12, { timeoutMs: 50 })).rejects.toMatchObject({
      code: "timeout",
      message: /restoring the VM's state/,
    });
  });

  it("a failed load is an error", async () => {
    await expect(
      restoreVmState(incoming("paused", "failed").qmp, 12, { pollMs: 1 }),
    ).rejects.toMatchObject({
      code: "unavailable",
      message: /restoring the VM's state failed/,
    });
  });
});
