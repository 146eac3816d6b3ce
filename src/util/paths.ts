import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Where VM and workspace state lives (`PYRO_HOME`, default the XDG state dir). */
export function pyroHome(): string {
  if (process.env.PYRO_HOME) return resolve(process.env.PYRO_HOME);
  const state = process.env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(state, "pyro-mcp");
}

/** Built kernels, agents and environments (`PYRO_CACHE_DIR`, default the XDG cache dir). */
export function cacheDir(): string {
  if (process.env.PYRO_CACHE_DIR) return resolve(process.env.PYRO_CACHE_DIR);
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(cache, "pyro-mcp");
}

/**
 * The package root: the agent source, kernel fragment and environment recipes ship with
 * the package and are built on the user's machine. Works from `src/` (tsx) and `dist/`.
 */
export const packageRoot: string = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
