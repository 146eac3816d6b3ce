import { spawn, spawnSync } from "node:child_process";

export interface AgentFuzzResult {
  mode: "libfuzzer" | "replay";
  /** libFuzzer executions, or corpus inputs replayed under gcc's sanitizers. */
  execs: number;
  ok: boolean;
  /** The tail of make's output when it failed (a crash names its input file). */
  failure: string | null;
}

/** agent/Makefile builds the libFuzzer target only with clang (`CLANG`, default `clang`). */
export function clangAvailable(): boolean {
  const clang = process.env.CLANG ?? "clang";
  return spawnSync(clang, ["--version"], { stdio: "ignore" }).status === 0;
}

/**
 * The agent's fuzz target for `seconds`: libFuzzer (`make fuzz-run`, which first replays
 * the seed corpus) when clang is there, else the sanitizer replay of the corpus
 * (`make fuzz`), which is all a gcc-only machine can do.
 */
export async function fuzzAgent(seconds: number): Promise<AgentFuzzResult> {
  const mode = clangAvailable() ? "libfuzzer" : "replay";
  const target =
    mode === "libfuzzer"
      ? ["fuzz-run", `FUZZ_SECONDS=${Math.max(1, Math.floor(seconds))}`]
      : ["fuzz"];
  const { code, output } = await make(["-C", "agent", ...target]);
  const execs =
    mode === "libfuzzer"
      ? Number(/Done (\d+) runs in/.exec(output)?.[1] ?? 0)
      : Number(/replayed (\d+) inputs/.exec(output)?.[1] ?? 0);
  const failure = code === 0 ? null : output.split("\n").slice(-40).join("\n");
  return { mode, execs, ok: code === 0, failure };
}

/** Runs make, echoing its output to stderr and keeping it for the counts. */
function make(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("make", args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const keep = (chunk: Buffer) => {
      process.stderr.write(chunk);
      // libFuzzer prints status lines forever; the counts are in the last ones.
      output = (output + chunk.toString()).slice(-200_000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, output }));
  });
}
