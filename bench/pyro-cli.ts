/** The built CLI as the benches drive it: one `pyro run` as a subprocess, timed whole. */
import { spawn, spawnSync } from "node:child_process";
import { resolve } from "node:path";

export const CLI = resolve("dist/cli/main.js");
export const BENCH_ENVIRONMENT = "debian:12-base";

export interface RunSample {
  /** Spawn of the CLI until it exited: what a user waits for. */
  totalMs: number;
  /** The `--json` result. */
  payload: RunPayload;
}

/** The fields of a run result the bench reads; `boot_mode` and friends come with templates. */
export interface RunPayload {
  acceleration?: string;
  boot_mode?: "cold" | "warm";
  cold_reason?: string | null;
  timings: Record<string, number>;
  [key: string]: unknown;
}

/**
 * Whether this build's `pyro run` takes `--cold` (memory templates are in): without it
 * every run is cold and the bench has no warm figure to print.
 */
export function cliHasColdFlag(): boolean {
  const help = spawnSync(process.execPath, [CLI, "run", "--help"], { encoding: "utf8" });
  return /--cold\b/.test(help.stdout);
}

/** `pyro run ENV --json [FLAGS] -- true` with PYRO_HOME=home. */
export function pyroRun(home: string, flags: string[] = []): Promise<RunSample> {
  const started = performance.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      [CLI, "run", BENCH_ENVIRONMENT, "--json", ...flags, "--", "true"],
      { env: { ...process.env, PYRO_HOME: home }, stdio: ["ignore", "pipe", "ignore"] },
    );
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`pyro run exited ${code}: ${out}`));
      resolvePromise({ totalMs: performance.now() - started, payload: JSON.parse(out) });
    });
  });
}
