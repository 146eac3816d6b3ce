/**
 * `npm run fuzz -- --minutes N`: the host's property tests and the agent's fuzz target for
 * a given time. First every `test/unit/**\/*.property.test.ts` in rounds, each round with a
 * large PYRO_PROPERTY_RUNS and a fresh PYRO_PROPERTY_SEED, for `--property-share` of the
 * time; then the agent's libFuzzer target for the rest when clang is installed, otherwise
 * the sanitizer replay of its corpus. Prints the counts; on a failure, the seed and the
 * command that replays it, and exits 1. See docs/testing.md.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { clangAvailable, fuzzAgent } from "./fuzz/agent.js";
import { propertyFiles, runRound, type RoundResult } from "./fuzz/properties.js";

const USAGE = "usage: npm run fuzz -- [--minutes N] [--runs CASES] [--property-share 0..1]";

interface FuzzOptions {
  minutes: number;
  runs: number;
  property_share: number;
}

function parseOptions(argv: string[]): FuzzOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: "string", default: "5" },
      runs: { type: "string", default: "2000" },
      "property-share": { type: "string" },
    },
  });
  const minutes = Number(values.minutes);
  const runs = Number(values.runs);
  // Without clang the agent part is a replay of a small corpus: the time goes to properties.
  const share = Number(values["property-share"] ?? (clangAvailable() ? 0.5 : 1));
  if (!(minutes > 0)) throw new Error("--minutes must be a positive number");
  if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs must be a positive integer");
  if (!(share >= 0 && share <= 1)) throw new Error("--property-share must be between 0 and 1");
  return { minutes, runs, property_share: share };
}

/** Property rounds until `deadline`; stops at the first failing round. */
async function propertyPhase(files: string[], runs: number, deadline: number) {
  const work = mkdtempSync(join(tmpdir(), "fuzz-"));
  // An interrupted run exits from a signal handler, past the finally below.
  const removeWork = () => rmSync(work, { recursive: true, force: true });
  process.once("exit", removeWork);
  const rounds: RoundResult[] = [];
  try {
    while (Date.now() < deadline) {
      const started = Date.now();
      const round = await runRound(files, runs, deadline, join(work, "round.json"));
      if (round.cut) break;
      rounds.push(round);
      process.stderr.write(
        `[fuzz] phase=round n=${rounds.length} seed=${round.seed} tests=${round.tests} ` +
          `cases=${round.tests * runs} ms=${Date.now() - started}\n`,
      );
      if (round.failures.length > 0) break;
    }
  } finally {
    removeWork();
    process.off("exit", removeWork);
  }
  return rounds;
}

function printFailure(round: RoundResult, runs: number): void {
  for (const f of round.failures) {
    process.stdout.write(`FAILED ${f.file} ${f.test}\n${f.message}\n`);
    process.stdout.write(
      `replay: PYRO_PROPERTY_SEED=${round.seed} PYRO_PROPERTY_RUNS=${runs} ` +
        `npx vitest run --project unit ${f.file}\n`,
    );
  }
}

async function main(): Promise<number> {
  let options: FuzzOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const started = Date.now();
  const end = started + options.minutes * 60_000;
  const files = propertyFiles();
  process.stderr.write(`[fuzz] phase=start property_files=${files.length} runs=${options.runs}\n`);
  const rounds = files.length
    ? await propertyPhase(files, options.runs, started + (end - started) * options.property_share)
    : [];
  const failed = rounds.find((r) => r.failures.length > 0);
  const tests = rounds.reduce((n, r) => n + r.tests, 0);
  process.stdout.write(
    `property: files=${files.length} rounds=${rounds.length} tests=${tests} ` +
      `cases=${tests * options.runs} seeds=${rounds.map((r) => r.seed).join(",") || "none"}\n`,
  );
  if (failed) {
    printFailure(failed, options.runs);
    process.stdout.write(`fuzz: FAILED ms=${Date.now() - started}\n`);
    return 1;
  }
  const agent = await fuzzAgent((end - Date.now()) / 1000);
  const label = agent.mode === "libfuzzer" ? "libfuzzer_execs" : "replayed_inputs";
  process.stdout.write(`agent: mode=${agent.mode} ${label}=${agent.execs}\n`);
  process.stdout.write(`fuzz: ${agent.ok ? "ok" : "FAILED"} ms=${Date.now() - started}\n`);
  if (agent.failure) process.stdout.write(agent.failure + "\n");
  return agent.ok ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    process.stderr.write(`[fuzz] phase=error ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 2;
  },
);
