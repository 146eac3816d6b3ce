import { spawn } from "node:child_process";
import { mkdir, open, readFile, rm, writeFile } from "node:fs/promises";
import { createConnection, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { PyroError } from "../contract/errors.js";
import { sleep } from "../util/process.js";
import { CappedLog, captureToLog } from "./console-log.js";
import type { VmmDriver, VmmExit, VmmHandle, VmmLaunchSpec } from "./driver.js";

/**
 * The host-process "VMM": no VM at all. The real agent binary runs on the host
 * (`pyro-agent --listen <dir>/agent.sock --root <dir>/host-root`) and everything above the
 * driver (shim, managers, surfaces) runs unchanged, so their rules can be tested in
 * seconds. It isolates nothing: the agent's commands are host processes with the
 * caller's rights, which is why it is chosen only by `PYRO_VMM=host` (`select.ts`).
 */

/** The guest's `/` on the host, next to the writable disk it stands in for. */
export const HOST_ROOT_NAME = "host-root";
/** Which disk the tree belongs to (its ext4 UUID): a new disk means a fresh tree. */
const HOST_ROOT_DISK_MARK = "host-root.disk";
/** Where the agent binary sits in the agent cache, next to its initramfs (`env/agent.ts`). */
const AGENT_BINARY_NAME = "pyro-agent";
const CONNECT_RETRY_MS = 10;
/** The agent's stderr closes with it; this only bounds the wait if it did not. */
const LOG_DRAIN_MS = 2_000;

/** ext4 superblock: 1024 bytes in; magic at +0x38, volume UUID at +0x68 (16 bytes). */
const EXT4_SUPERBLOCK = { offset: 1024, magic: 0x38, uuid: 0x68, bytes: 0x78 } as const;
const EXT4_MAGIC = 0xef53;

export interface HostProcessOptions {
  /** The agent to run. @default the `pyro-agent` beside the spec's initramfs */
  agentBinary?: string;
}

export class HostProcessDriver implements VmmDriver {
  readonly name = "host" as const;

  constructor(private readonly options: HostProcessOptions = {}) {}

  async launch(spec: VmmLaunchSpec): Promise<VmmHandle> {
    const root = await prepareHostRoot(spec);
    // The agent binds the socket itself; a stale file from a killed run would stop it.
    await rm(spec.agentSocketPath, { force: true });
    const binary = this.options.agentBinary ?? join(dirname(spec.initrdPath), AGENT_BINARY_NAME);
    const [command, ...args] = hostAgentCommand(binary, spec.agentSocketPath, root);
    const child = spawn(command!, args, { cwd: "/", stdio: ["ignore", "ignore", "pipe"] });
    // The agent logs to stderr: that is this "VM"'s console, capped like a real one.
    const logged = captureToLog(child.stderr!, new CappedLog(spec.consoleLogPath));
    const exited = new Promise<VmmExit>((resolve) => {
      child.on("exit", (code, signal) => resolve({ code, signal }));
      child.on("error", () => resolve({ code: 127, signal: null }));
    }).then(async (exit) => {
      await Promise.race([logged, sleep(LOG_DRAIN_MS)]);
      return exit;
    });
    if (!child.pid) {
      await exited;
      throw new PyroError("unavailable", `could not start ${command} to run the host agent`);
    }
    const agentChannel = connectWhenListening(spec.agentSocketPath, exited);
    agentChannel.catch(() => {}); // the shim awaits it; this only keeps an early failure handled
    return new HostProcessHandle(child.pid, exited, agentChannel, () => child.kill("SIGKILL"));
  }
}

/**
 * The agent in a PID namespace of its own, as its PID 1: `unshare --kill-child` kills it
 * when unshare goes, and with it every process it started (a PID namespace ends with its
 * init), and `setpriv --pdeathsig` makes unshare go when the shim does, even by SIGKILL.
 * The namespace also keeps a command's `kill -9 -1` to its own processes. Without root,
 * a user namespace grants the right to make the others.
 */
export function hostAgentCommand(
  binary: string,
  socketPath: string,
  root: string,
  isRoot = process.getuid?.() === 0,
): string[] {
  return [
    "setpriv",
    "--pdeathsig",
    "KILL",
    "--",
    "unshare",
    ...(isRoot ? [] : ["--user", "--map-root-user"]),
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
    "--",
    binary,
    "--listen",
    socketPath,
    "--root",
    root,
  ];
}

/**
 * The host directory that is the guest's `/`, kept with the writable disk so that
 * stop/start keeps the tree and a reset (which makes a new disk) starts from an empty one,
 * as a real guest would. The disk itself is never used, only its identity.
 */
async function prepareHostRoot(spec: VmmLaunchSpec): Promise<string> {
  const disk = spec.disks.find((d) => !d.readOnly);
  if (!disk) {
    throw new PyroError(
      "internal",
      "the host-process driver needs a writable disk to key its tree",
    );
  }
  const dir = dirname(disk.path);
  const root = join(dir, HOST_ROOT_NAME);
  const mark = join(dir, HOST_ROOT_DISK_MARK);
  const identity = await ext4Uuid(disk.path);
  const current = await readFile(mark, "utf8").catch(() => undefined);
  if (current !== identity) {
    await rm(root, { recursive: true, force: true });
    await writeFile(mark, identity, { mode: 0o600 });
  }
  await mkdir(root, { recursive: true, mode: 0o755 });
  return root;
}

/** The volume UUID of an ext4 image, as hex: `mkfs.ext4` makes a new one per disk. */
export async function ext4Uuid(path: string): Promise<string> {
  const file = await open(path, "r");
  try {
    const block = Buffer.alloc(EXT4_SUPERBLOCK.bytes);
    await file.read(block, 0, block.length, EXT4_SUPERBLOCK.offset);
    if (block.readUInt16LE(EXT4_SUPERBLOCK.magic) !== EXT4_MAGIC) {
      throw new PyroError("internal", `${path} is not an ext4 image`);
    }
    return block.subarray(EXT4_SUPERBLOCK.uuid, EXT4_SUPERBLOCK.uuid + 16).toString("hex");
  } finally {
    await file.close();
  }
}

/** A connection once the agent listens; gives up when the agent process has exited. */
async function connectWhenListening(path: string, exited: Promise<VmmExit>): Promise<Socket> {
  let gone: VmmExit | undefined;
  void exited.then((exit) => (gone = exit));
  for (;;) {
    const socket = await tryConnect(path);
    if (socket) return socket;
    if (gone) {
      throw new PyroError(
        "unavailable",
        `the host agent exited (${gone.code ?? gone.signal}) before it listened`,
      );
    }
    await sleep(CONNECT_RETRY_MS);
  }
}

function tryConnect(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once("connect", () => resolve(socket));
    socket.once("error", () => resolve(undefined));
  });
}

class HostProcessHandle implements VmmHandle {
  private exitedFlag = false;

  constructor(
    readonly pid: number,
    readonly exited: Promise<VmmExit>,
    readonly agentChannel: Promise<Socket>,
    private readonly killNow: () => void,
  ) {
    void exited.then(() => (this.exitedFlag = true));
  }

  /**
   * KILL at once: unshare blocks TERM while it waits for its child, and the shim asks for
   * `stop` only after the agent's own `shutdown` (which ends its processes) had its chance.
   * unshare's parting KILL then ends the agent's whole namespace.
   */
  async stop(): Promise<void> {
    this.kill();
    await this.exited;
  }

  kill(): void {
    if (!this.exitedFlag) this.killNow();
  }

  status(): "running" | "exited" {
    return this.exitedFlag ? "exited" : "running";
  }
}
