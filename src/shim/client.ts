import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { fileURLToPath } from "node:url";
import { PyroError } from "../contract/errors.js";
import { ChannelClient } from "../guest/client.js";
import { SHIM_OPS, type ShimNetwork, type ShimPublishedPort } from "../guest/ops/index.js";
import { isProcessAlive, lastLines, sleep } from "../util/process.js";
import { vmFiles, type ShimStatus } from "./launch.js";

// Next to this module: dist/shim/main.js when built, src/shim/main.ts under tsx or vitest.
const SHIM_START_TIMEOUT_MS = 10_000;
const SHIM_ENTRY = fileURLToPath(
  new URL(import.meta.url.endsWith(".ts") ? "./main.ts" : "./main.js", import.meta.url),
);

/**
 * Starts the detached shim for a prepared VM directory. It gets its own session so a
 * Ctrl-C or SIGKILL of the caller does not take the VM with it.
 */
export async function spawnShim(dir: string): Promise<number> {
  const files = vmFiles(dir);
  const logFd = openSync(files.shimLog, "a", 0o600);
  // From src/ under tsx, the entry is a .ts file that needs tsx's loader too.
  const execArgv = SHIM_ENTRY.endsWith(".ts") ? ["--import", "tsx"] : [];
  const child = spawn(process.execPath, [...execArgv, SHIM_ENTRY, dir], {
    detached: true,
    stdio: ["ignore", logFd, logFd],
  });
  closeSync(logFd);
  child.unref();
  const pid = child.pid;
  if (!pid) throw new PyroError("internal", "could not start the VM supervisor process");
  const deadline = Date.now() + SHIM_START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const socket = await tryConnect(files.socket);
    if (socket) {
      socket.destroy();
      return pid;
    }
    if (!isProcessAlive(pid)) break;
    await sleep(5);
  }
  // A shim that is still starting after the deadline would boot a VM nobody waits for.
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // It already exited.
  }
  const log = lastLines(await readFile(files.shimLog, "utf8").catch(() => ""), 10);
  throw new PyroError("internal", `the VM supervisor did not start:\n${log || "(no output)"}`);
}

function tryConnect(path: string): Promise<ReturnType<typeof createConnection> | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once("connect", () => resolve(socket));
    socket.once("error", () => resolve(undefined));
  });
}

/** A connection to a running VM's shim: shim operations plus the agent protocol. */
export class ShimClient extends ChannelClient {
  static async connect(dir: string): Promise<ShimClient> {
    const socket = await tryConnect(vmFiles(dir).socket);
    if (!socket) throw new PyroError("unavailable", `the VM's supervisor is not running (${dir})`);
    return new ShimClient(socket);
  }

  async waitReady(): Promise<ShimStatus> {
    return statusOf(await this.request(SHIM_OPS.wait_ready, {}));
  }

  async status(): Promise<ShimStatus> {
    return statusOf(await this.request(SHIM_OPS.status, {}));
  }

  /** Ties the VM's life to this connection: if it closes, the shim deletes the VM. */
  async claim(): Promise<void> {
    await this.request(SHIM_OPS.claim, {});
  }

  /** The VM's network: policy, addresses, published ports and refusal counts. */
  async networkInfo(): Promise<ShimNetwork> {
    return withoutType(await this.request(SHIM_OPS.network_info, {}));
  }

  /** Forwards 127.0.0.1:host_port (null: a free one) to the guest's port. */
  async publishPort(guestPort: number, hostPort: number | null): Promise<ShimPublishedPort> {
    return withoutType(
      await this.request(SHIM_OPS.publish_port, { guest_port: guestPort, host_port: hostPort }),
    );
  }

  async unpublishPort(hostPort: number): Promise<void> {
    await this.request(SHIM_OPS.unpublish_port, { host_port: hostPort });
  }

  /**
   * Saves the VM into its directory and ends the shim; answers with the final status
   * (`paused`). `conflict` while requests keep running, `unavailable` for a driver that
   * cannot save.
   */
  async pause(): Promise<ShimStatus> {
    return statusOf(await this.request(SHIM_OPS.pause, {}));
  }

  /** Copies the running VM into another sandbox directory; returns how long it was stopped. */
  async fork(targetDir: string): Promise<{ stopped_ms: number }> {
    return withoutType(await this.request(SHIM_OPS.fork, { target_dir: targetDir }));
  }

  /** Powers the VM off; with `remove` its state directory goes too. */
  async stop(remove: boolean): Promise<ShimStatus> {
    return statusOf(await this.request(SHIM_OPS.stop, { remove }));
  }
}

/** The status without the frame's `type`. */
function statusOf({ type: _type, ...status }: ShimStatus & { type: "result" }): ShimStatus {
  return status;
}

/** A result frame's fields without its `type`. */
function withoutType<T extends { type: "result" }>({ type: _type, ...fields }: T): Omit<T, "type"> {
  return fields;
}
