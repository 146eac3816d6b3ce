import { spawn, type ChildProcess } from "node:child_process";
import { CLI_ENTRY } from "./cli.js";
import { isolatedHome } from "./guest.js";
import { tempDir } from "./temp.js";

/**
 * A test file of the `host` tier: its own PYRO_HOME and the host-process driver
 * (`src/vmm/host-process.ts`), so the shim and managers run for real around the real
 * agent, without a VM. The environment's artifacts must be built (`pyro env pull`).
 */
export function hostTierHome(): string {
  process.env.PYRO_VMM = "host";
  return isolatedHome();
}

export const HOST_ENVIRONMENT = "debian:12-base";

/** A fresh host directory for seeds and exports. */
export function scratchDir(): string {
  return tempDir("pyro-host-tier-");
}

/** The built CLI as a separate process (a client that can die), with the test's env. */
export function spawnCli(args: string[]): ChildProcess {
  return spawn(process.execPath, [CLI_ENTRY, ...args], {
    env: process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
}
