import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

/** Every property test file of the unit tier (`test/unit/**\/*.property.test.ts`). */
export function propertyFiles(root = "test/unit"): string[] {
  return readdirSync(root, { recursive: true, encoding: "utf8" })
    .filter((name) => name.endsWith(".property.test.ts"))
    .map((name) => join(root, name))
    .sort();
}

export interface RoundResult {
  seed: number;
  /** Property tests that ran (each ran PYRO_PROPERTY_RUNS cases). */
  tests: number;
  /** The round reached the deadline and was stopped before it finished. */
  cut: boolean;
  failures: { file: string; test: string; message: string }[];
}

interface VitestJson {
  testResults?: {
    name: string;
    assertionResults?: { fullName: string; status: string; failureMessages?: string[] }[];
  }[];
}

/**
 * One round: every property file under a fresh PYRO_PROPERTY_SEED and a large
 * PYRO_PROPERTY_RUNS, stopped at `deadline` (epoch ms) if it is still running then.
 */
export async function runRound(
  files: string[],
  runs: number,
  deadline: number,
  reportPath: string,
): Promise<RoundResult> {
  const seed = randomInt(2 ** 31);
  const child = spawn(
    "npx",
    [
      "vitest",
      "run",
      "--project",
      "unit",
      // The unit tier's 5 s default is sized for its own small run counts.
      "--testTimeout",
      String(Math.max(deadline - Date.now(), 1_000)),
      "--reporter=json",
      "--outputFile",
      reportPath,
      ...files,
    ],
    {
      env: { ...process.env, PYRO_PROPERTY_RUNS: String(runs), PYRO_PROPERTY_SEED: String(seed) },
      stdio: ["ignore", "ignore", "inherit"],
      detached: true,
    },
  );
  // vitest runs its files in worker processes: end the whole group it leads. Detached, it
  // would not see a Ctrl-C of the fuzz run, so pass that on too.
  const killGroup = () => process.kill(-child.pid!, "SIGKILL");
  const interrupted = () => {
    killGroup();
    process.exit(130);
  };
  process.once("SIGINT", interrupted).once("SIGTERM", interrupted);
  let cut = false;
  const timer = setTimeout(
    () => {
      cut = true;
      killGroup();
    },
    Math.max(deadline - Date.now(), 0),
  );
  await new Promise((resolve) => child.on("close", resolve));
  clearTimeout(timer);
  process.off("SIGINT", interrupted).off("SIGTERM", interrupted);
  if (cut) return { seed, tests: 0, cut, failures: [] };
  return { seed, cut, ...readReport(reportPath) };
}

function readReport(reportPath: string): Pick<RoundResult, "tests" | "failures"> {
  let report: VitestJson;
  try {
    report = JSON.parse(readFileSync(reportPath, "utf8")) as VitestJson;
  } catch {
    const message = "vitest wrote no report (it failed before running the tests)";
    return { tests: 0, failures: [{ file: "", test: "", message }] };
  }
  let tests = 0;
  const failures: RoundResult["failures"] = [];
  for (const file of report.testResults ?? []) {
    const assertions = file.assertionResults ?? [];
    tests += assertions.filter((a) => a.status === "passed" || a.status === "failed").length;
    for (const a of assertions.filter((a) => a.status === "failed")) {
      const message = (a.failureMessages ?? []).join("\n").split("\n").slice(0, 8).join("\n");
      failures.push({ file: relative(process.cwd(), file.name), test: a.fullName, message });
    }
    if (assertions.length === 0) {
      const message = "the file failed to load or ran no test";
      failures.push({ file: relative(process.cwd(), file.name), test: "", message });
    }
  }
  return { tests, failures };
}
