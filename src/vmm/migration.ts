import { createWriteStream } from "node:fs";
import { chmod, lchown, mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { PyroError } from "../contract/errors.js";
import { sleep } from "../util/process.js";
import type { QmpClient } from "./qmp.js";

/** What a save or restore needs of a QMP connection (tests drive it with a fake QEMU). */
export type QmpCommands = Pick<QmpClient, "execute">;

/**
 * Saving and restoring a QEMU VM's state (docs/architecture.md "VM state"). Guest RAM lives
 * in a `share=on` file backend, and `x-ignore-shared` leaves it out of the migration
 * stream: the stream holds only device and CPU state (tens of KiB), the RAM stays in its
 * file for the next QEMU to map.
 */

/** A device-state stream beyond this is not one (ours are ~100 KiB): the save fails. */
export const VMSTATE_MAX_BYTES = 64 * 1024 * 1024;

export interface MigrationOptions {
  /** Bound on the whole save or restore. @default 30000 (TCG on a loaded host) */
  timeoutMs?: number;
  /** How often QEMU is asked how the migration goes. @default 5 */
  pollMs?: number;
  /** Cap on the saved stream. @default VMSTATE_MAX_BYTES */
  maxStateBytes?: number;
}

const IGNORE_SHARED = { capabilities: [{ capability: "x-ignore-shared", state: true }] };
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_POLL_MS = 5;

interface MigrationInfo {
  status?: string;
  "error-desc"?: string;
}

/** Polls `query-migrate` until the migration completed; a failed one is an error. */
async function waitMigration(
  qmp: QmpCommands,
  what: string,
  deadline: number,
  pollMs: number,
): Promise<void> {
  for (;;) {
    const info = ((await qmp.execute("query-migrate")) ?? {}) as MigrationInfo;
    if (info.status === "completed") return;
    if (info.status === "failed" || info.status === "cancelled") {
      const why = String(info["error-desc"] ?? info.status).slice(0, 1024);
      throw new PyroError("unavailable", `${what} failed: ${why}`);
    }
    if (Date.now() > deadline) throw new PyroError("timeout", `${what} did not finish in time`);
    await sleep(pollMs);
  }
}

/**
 * Stops the guest's CPUs and writes its device state to `vmstatePath` (RAM stays in the
 * memory file). QEMU sends the stream to a Unix socket we listen on, since `exec:` is
 * denied by its seccomp filter and outgoing `fd:` needs fd passing. `owner` is QEMU's
 * jail identity: the socket must be connectable by it and by nobody else. The VM stays
 * stopped (state `postmigrate`); on failure no state file is left.
 */
export async function saveVmState(
  qmp: QmpCommands,
  vmstatePath: string,
  owner: { uid: number; gid: number } | undefined,
  options: MigrationOptions = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const receiver = await receiveState(vmstatePath, owner, options.maxStateBytes);
  try {
    const saving = migrateOut(qmp, receiver, deadline, options.pollMs ?? DEFAULT_POLL_MS);
    await beforeDeadline(saving, deadline, "saving the VM's state did not finish in time");
  } catch (error) {
    await rm(vmstatePath, { force: true });
    throw error;
  } finally {
    await receiver.close();
  }
}

async function migrateOut(
  qmp: QmpCommands,
  receiver: { socketPath: string; done: Promise<number> },
  deadline: number,
  pollMs: number,
): Promise<void> {
  await qmp.execute("stop");
  await qmp.execute("migrate-set-capabilities", IGNORE_SHARED);
  await qmp.execute("migrate", { uri: `unix:${receiver.socketPath}` });
  await Promise.race([
    waitMigration(qmp, "saving the VM's state", deadline, pollMs),
    // A stream over the cap fails the save at once, whatever QEMU reports.
    receiver.done.then(() => new Promise<never>(() => {})),
  ]);
  await receiver.done;
}

/**
 * `work`, or a `timeout` at the deadline: a QEMU whose monitor stopped answering must
 * not hold a pause forever. The timer never outlives the work (a CLI would wait for it).
 */
async function beforeDeadline<T>(work: Promise<T>, deadline: number, message: string): Promise<T> {
  work.catch(() => {}); // what it does after the deadline is nobody's concern
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new PyroError("timeout", message)),
      Math.max(0, deadline - Date.now()),
    );
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Listens in a fresh private directory for QEMU's one connection and writes what it
 * sends to `path`, at most `maxBytes`. `done` settles with the byte count once the
 * stream ended and the file is closed.
 */
async function receiveState(
  path: string,
  owner: { uid: number; gid: number } | undefined,
  maxBytes = VMSTATE_MAX_BYTES,
) {
  const dir = await mkdtemp(join(tmpdir(), "pyro-save-"));
  const socketPath = join(dir, "vmstate.sock");
  const server = createServer();
  server.maxConnections = 1;
  let connection: Socket | undefined;
  const done = new Promise<number>((resolve, reject) => {
    server.once("connection", (socket) => {
      connection = socket;
      server.close(); // one connection: whoever comes next is refused
      let bytes = 0;
      const cap = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          bytes += chunk.length;
          if (bytes > maxBytes)
            callback(new PyroError("unavailable", `the VM's state is over ${maxBytes} bytes`));
          else callback(null, chunk);
        },
      });
      pipeline(socket, cap, createWriteStream(path, { mode: 0o600 })).then(
        () => resolve(bytes),
        reject,
      );
    });
  });
  done.catch(() => {}); // awaited by the caller only once QEMU says the stream is complete
  try {
    await listen(server, socketPath);
    await chmod(socketPath, 0o600);
    if (owner) {
      // The directory stays root's: QEMU's uid may only pass through it (0711) and connect
      // to its own socket. Owning the directory would let a QEMU the guest took over swap
      // the socket for a link (root's chown would follow it) or plant links for root's rm.
      await chmod(dir, 0o711);
      await lchown(socketPath, owner.uid, owner.gid);
    }
  } catch (error) {
    server.close();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const close = async () => {
    server.close();
    connection?.destroy(); // a save that failed or timed out leaves QEMU nothing to write to
    await rm(dir, { recursive: true, force: true });
  };
  return { socketPath, done, close };
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * Completes a restore on a QEMU started with `-incoming defer`: the same capability as
 * the save (it must be set before the incoming migration starts), the state from the
 * inherited fd, then `cont` once QEMU has loaded it. A QEMU whose load fails exits.
 */
export async function restoreVmState(
  qmp: QmpCommands,
  vmstateFd: number,
  options: MigrationOptions = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  const restoring = migrateIn(qmp, vmstateFd, deadline, pollMs);
  await beforeDeadline(restoring, deadline, "restoring the VM's state did not finish in time");
}

async function migrateIn(
  qmp: QmpCommands,
  vmstateFd: number,
  deadline: number,
  pollMs: number,
): Promise<void> {
  await qmp.execute("migrate-set-capabilities", IGNORE_SHARED);
  await qmp.execute("migrate-incoming", { uri: `fd:${vmstateFd}` });
  await waitMigration(qmp, "restoring the VM's state", deadline, pollMs);
  const { status } = ((await qmp.execute("query-status")) ?? {}) as { status?: string };
  // A state saved from a stopped VM (ours always are) loads as `paused`.
  if (status !== "running") await qmp.execute("cont");
}
