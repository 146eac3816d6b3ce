/**
 * `npm run soak -- --runs N`: a leak soak. Starts N `pyro run`s and workspace execs
 * (through the built CLI and through the SDK, each client a process of its own, a few at a
 * time), SIGKILLs a random share of the clients at random moments, then checks that no VM
 * directory, VMM or shim process, socket, `pyro-*` temp dir or per-VM cgroup is left and
 * that every workspace still works. Everything is seeded (`--seed`) and runs in a PYRO_HOME
 * and TMPDIR of its own. Prints the figures; exits 1 on any leftover or failure.
 * See docs/testing.md.
 */
import { randomInt } from "node:crypto";
import { parseArgs } from "node:util";
import { formatReport } from "./soak/report.js";
import { soak, type SoakOptions } from "./soak/run.js";

const USAGE = `usage: npm run soak -- [--runs N] [--seed S] [--concurrency C] [--workspaces W]
       [--kill-share 0..1] [--max-kill-ms MS] [--settle-ms MS] [--json]`;

function number(value: string | undefined, fallback: number, name: string, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}`);
  return n;
}

function parseOptions(argv: string[]): SoakOptions & { json: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: "string" },
      seed: { type: "string" },
      concurrency: { type: "string" },
      workspaces: { type: "string" },
      "kill-share": { type: "string" },
      "max-kill-ms": { type: "string" },
      "settle-ms": { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const killShare = number(values["kill-share"], 0.4, "kill-share");
  if (killShare > 1) throw new Error("--kill-share must be between 0 and 1");
  return {
    runs: Math.floor(number(values.runs, 20, "runs", 1)),
    seed: Math.floor(number(values.seed, randomInt(2 ** 31), "seed")),
    concurrency: Math.floor(number(values.concurrency, 3, "concurrency", 1)),
    workspaces: Math.floor(number(values.workspaces, 2, "workspaces")),
    kill_share: killShare,
    max_kill_ms: number(values["max-kill-ms"], 5_000, "max-kill-ms"),
    settle_ms: number(values["settle-ms"], 30_000, "settle-ms"),
    json: values.json,
    log: (line) => process.stderr.write(line + "\n"),
  };
}

async function main(): Promise<number> {
  let options: ReturnType<typeof parseOptions>;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  options.log(`[soak] phase=start seed=${options.seed} runs=${options.runs}`);
  const report = await soak(options);
  process.stdout.write(formatReport(report));
  if (options.json) process.stdout.write(JSON.stringify(report) + "\n");
  return report.ok ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    process.stderr.write(`[soak] phase=error ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 2;
  },
);
