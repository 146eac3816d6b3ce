import { rm, stat } from "node:fs/promises";
import { PyroError } from "../contract/errors.js";
import { createStateDiskFile } from "../disk/state-disk-file.js";
import { ShimClient, spawnShim } from "../shim/client.js";
import { vmFiles, type ShimLaunchConfig, type ShimStatus } from "../shim/launch.js";
import { writeJsonAtomic } from "../util/fs.js";
import { isProcessAlive, sleep } from "../util/process.js";
import { liveState } from "./records.js";

/** A fresh, empty writable layer (the guest agent finds it by its label). */
export async function createStateDisk(dir: string): Promise<void> {
  await createStateDiskFile(vmFiles(dir).stateDisk);
}

/** Kills a sandbox's shim and VMM if they still run: what a dead or mute shim leaves. */
export async function killSandboxProcesses(dir: string): Promise<void> {
  const live = await liveState(dir);
  for (const pid of [
    live.shimAlive ? live.shim?.shim_pid : undefined,
    live.vmmAlive ? live.shim?.vmm_pid : undefined,
  ]) {
    try {
      if (pid) process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/**
 * A shim that died hard (SIGKILL, OOM) leaves its sockets, and maybe its VMM, behind;
 * both would stop the next boot, so they go first.
 */
async function clearLeftovers(dir: string): Promise<void> {
  await killSandboxProcesses(dir);
  const files = vmFiles(dir);
  await Promise.all(
    [files.socket, files.agentSocket, files.controlSocket].map((path) => rm(path, { force: true })),
  );
}

export interface BootedSandbox {
  client: ShimClient;
  ready: ShimStatus;
}

/**
 * Starts the shim for a prepared directory and waits until the guest agent answers.
 * With `claim`, the VM's life is tied to the returned connection (one-shot runs).
 * On failure the shim has already cleaned up after itself; the error carries its reason.
 */
export async function bootSandbox(
  dir: string,
  launch: ShimLaunchConfig,
  options: { claim: boolean },
): Promise<BootedSandbox> {
  const files = vmFiles(dir);
  await clearLeftovers(dir);
  if (!(await stat(files.stateDisk).catch(() => undefined))) await createStateDisk(dir);
  await writeJsonAtomic(files.launch, launch, 0o600, { createParent: false });
  const shimPid = await spawnShim(dir);
  let client: ShimClient | undefined;
  try {
    client = await ShimClient.connect(dir);
    if (options.claim) await client.claim();
    const ready = await client.waitReady();
    if (ready.state !== "ready") {
      throw new PyroError("unavailable", `the VM failed to boot: ${ready.error ?? ready.state}`);
    }
    return { client, ready };
  } catch (error) {
    client?.destroy();
    // A failed shim reports the failure, then cleans up (a one-shot VM's whole directory).
    // A caller that boots the same directory again (a warm boot's cold retry) must not
    // race that cleanup; the shim starts its VMM before it serves clients, so its boot can
    // fail before anyone is connected to hear it.
    await waitForExit(shimPid, FAILED_SHIM_EXIT_WAIT_MS);
    throw error;
  }
}

/** How long a caller waits for a shim whose boot failed to finish its cleanup. */
const FAILED_SHIM_EXIT_WAIT_MS = 10_000;

async function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid) && Date.now() < deadline) await sleep(10);
}
