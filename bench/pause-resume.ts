/**
 * Pause and resume for `npm run bench` (issue 10 targets: pause <= 100 ms, resume to a
 * working exec <= 0.3x a cold start): one workspace, paused and resumed through the CLI
 * a few times, each resume followed by an exec.
 */
import { spawn, spawnSync } from "node:child_process";
import { median } from "./measure.js";
import { BENCH_ENVIRONMENT, CLI } from "./pyro-cli.js";

export interface PauseResumeFigures {
  /** The results' own `pause_ms` and `resume_ms` (request to saved and gone / answering). */
  pauseMs: number;
  resumeMs: number;
  /** Whole CLI processes: `workspace resume` then `workspace exec -- true`. */
  resumeToExecWallMs: number;
  resumedFrom: string[];
}

/** Whether this build has `pyro workspace pause`. */
export function cliHasPause(): boolean {
  return spawnSync(process.execPath, [CLI, "workspace", "pause", "--help"]).status === 0;
}

/** `pyro ARGS` with PYRO_HOME=home; its stdout, failing loudly on a non-zero exit. */
function pyro(home: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, PYRO_HOME: home },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`pyro ${args.join(" ")}: ${code} ${err}`)),
    );
  });
}

export async function pauseResume(home: string, runs: number): Promise<PauseResumeFigures> {
  const id = (await pyro(home, ["workspace", "create", BENCH_ENVIRONMENT, "--id-only"])).trim();
  const samples: { pause: number; resume: number; wall: number; from: string }[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const paused = JSON.parse(await pyro(home, ["workspace", "pause", id, "--json"]));
      const started = performance.now();
      const resumed = JSON.parse(await pyro(home, ["workspace", "resume", id, "--json"]));
      await pyro(home, ["workspace", "exec", id, "--", "true"]);
      samples.push({
        pause: paused.pause_ms,
        resume: resumed.resume_ms,
        wall: performance.now() - started,
        from: resumed.resumed_from,
      });
    }
  } finally {
    await pyro(home, ["workspace", "delete", id]).catch(() => "");
  }
  return {
    pauseMs: median(samples.map((s) => s.pause)),
    resumeMs: median(samples.map((s) => s.resume)),
    resumeToExecWallMs: median(samples.map((s) => s.wall)),
    resumedFrom: [...new Set(samples.map((s) => s.from))],
  };
}
