import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { opCommand, opMarker, type SoakOp } from "./plan.js";

export const CLI_ENTRY = resolve("dist/cli/main.js");
const SDK_ENTRY = pathToFileURL(resolve("dist/index.js")).href;

/** Guest memory of every soak VM: small, so a few at a time fit beside other work. */
export const SOAK_MEM_MIB = 256;

/** Far beyond a TCG boot plus a 1.5 s command, even on a loaded machine. */
const CLIENT_DEADLINE_MS = 120_000;

/**
 * An SDK client in a process of its own, so it can be SIGKILLed like a CLI: it imports the
 * built package, makes one call and prints the result as JSON.
 */
const SDK_CLIENT = `
const [entry, call] = process.argv.slice(1);
const { Pyro } = await import(entry);
const { method, params } = JSON.parse(call);
process.stdout.write(JSON.stringify(await new Pyro()[method](params)));
`;

export interface ClientOutcome {
  op: SoakOp;
  /** The SIGKILL reached a live client. */
  killed: boolean;
  exit_code: number | null;
  duration_ms: number;
  /** Why a client that was not killed did not do its job, or null. */
  problem: string | null;
}

/** The process an op runs as: `pyro run`/`pyro workspace exec --json`, or an SDK client. */
function clientArgs(op: SoakOp, workspaceIds: string[]): string[] {
  const command = opCommand(op);
  const workspace_id = op.workspace === null ? null : workspaceIds[op.workspace]!;
  const mem = String(SOAK_MEM_MIB);
  switch (op.kind) {
    case "cli-run":
      return [CLI_ENTRY, "run", "debian:12-base", "--json", "--mem-mib", mem, "--", ...command];
    case "cli-exec":
      return [CLI_ENTRY, "workspace", "exec", workspace_id!, "--json", "--", ...command];
    case "sdk-run":
      return sdkArgs("runInVm", { environment: "debian:12-base", command, mem_mib: SOAK_MEM_MIB });
    case "sdk-exec":
      return sdkArgs("execWorkspace", { workspace_id, command });
  }
}

function sdkArgs(method: string, params: object): string[] {
  return ["--input-type=module", "-e", SDK_CLIENT, SDK_ENTRY, JSON.stringify({ method, params })];
}

/** Runs one op's client to its end, SIGKILLing it at the op's moment if it still runs. */
export function runClient(
  op: SoakOp,
  workspaceIds: string[],
  env: NodeJS.ProcessEnv,
): Promise<ClientOutcome> {
  const started = performance.now();
  const { child, output } = spawnNode(clientArgs(op, workspaceIds), env);
  let killed = false;
  const timer =
    op.kill_after_ms === null
      ? null
      : setTimeout(() => (killed = child.kill("SIGKILL")), op.kill_after_ms);
  // A client that never ends (a reply that never comes) is a failure, not a hung soak.
  let hung = false;
  const deadline = setTimeout(() => (hung = child.kill("SIGKILL")), CLIENT_DEADLINE_MS);
  return new Promise((resolvePromise) => {
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      clearTimeout(deadline);
      killed &&= signal === "SIGKILL" && !hung;
      const duration_ms = Math.round(performance.now() - started);
      const problem = hung
        ? `${op.kind} #${op.index} did not end within ${CLIENT_DEADLINE_MS} ms`
        : killed
          ? null
          : judge(op, code, output.stdout, output.stderr);
      resolvePromise({ op, killed, exit_code: code, duration_ms, problem });
    });
  });
}

/** A client that was left alone must have run its command and returned its marker. */
function judge(op: SoakOp, code: number | null, stdout: string, stderr: string): string | null {
  const tail = (stderr.trim().split("\n").pop() ?? "").slice(0, 300);
  if (code !== 0) return `${op.kind} #${op.index} exited ${code}: ${tail}`;
  try {
    const result = JSON.parse(stdout) as { exit_code?: number; stdout?: string };
    if (result.exit_code === 0 && result.stdout === opMarker(op)) return null;
    return `${op.kind} #${op.index} returned ${JSON.stringify(result).slice(0, 300)}`;
  } catch {
    return `${op.kind} #${op.index} printed no JSON result: ${stdout.slice(0, 300)}`;
  }
}

/** Runs every op, `concurrency` clients at a time, in plan order. */
export async function runClients(
  ops: SoakOp[],
  workspaceIds: string[],
  env: NodeJS.ProcessEnv,
  concurrency: number,
  onOutcome: (outcome: ClientOutcome) => void = () => {},
): Promise<ClientOutcome[]> {
  const outcomes: ClientOutcome[] = [];
  let next = 0;
  const lane = async () => {
    while (next < ops.length) {
      const outcome = await runClient(ops[next++]!, workspaceIds, env);
      outcomes.push(outcome);
      onOutcome(outcome);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ops.length) }, lane));
  return outcomes.sort((a, b) => a.op.index - b.op.index);
}

/**
 * One CLI call the soak itself makes (setup, checks, teardown), `--json` among `args`;
 * throws when it fails.
 */
export function cliJson<T>(args: string[], env: NodeJS.ProcessEnv): Promise<T> {
  const { child, output } = spawnNode([CLI_ENTRY, ...args], env);
  return new Promise((resolvePromise, reject) => {
    child.on("close", (code) => {
      const { stdout, stderr } = output;
      if (code === 0) return resolvePromise(JSON.parse(stdout) as T);
      reject(new Error(`pyro ${args.join(" ")} exited ${code}: ${stderr.trim() || stdout}`));
    });
  });
}

/** Starts `node ARGS` and collects its stdout and stderr as text. */
function spawnNode(args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  const output = { stdout: "", stderr: "" };
  child.stdout.on("data", (c: Buffer) => (output.stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (output.stderr += c.toString()));
  return { child, output };
}
