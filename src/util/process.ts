import { spawn, type SpawnOptions } from "node:child_process";
import { readFileSync } from "node:fs";
import { PyroError } from "../contract/errors.js";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Whether `pid` still runs. A zombie does not: a detached shim outlives the process that
 * started it, and whoever inherits it (init, a container's PID 1) may take a second or
 * more to reap it, which `kill(pid, 0)` alone would count as running.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  return !isZombie(pid);
}

function isZombie(pid: number): boolean {
  try {
    // The state is the field after the parenthesised command name (which may hold spaces).
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return false;
  }
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions extends SpawnOptions {
  /** Receives each stderr/stdout line as it arrives (for progress). */
  onLine?: (line: string) => void;
  /** Keep at most this many bytes of each stream. @default 1 MiB */
  maxCaptureBytes?: number;
}

/** Runs a host tool and captures its (bounded) output; never throws for a non-zero exit. */
export function runCommand(cmd: string, args: string[], options: RunOptions = {}) {
  const { onLine, maxCaptureBytes = 1 << 20, ...spawnOptions } = options;
  return new Promise<CommandResult>((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...spawnOptions });
    const out = { stdout: "", stderr: "" };
    let partial = "";
    const collect = (key: "stdout" | "stderr") => (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      if (out[key].length < maxCaptureBytes) out[key] += text.slice(0, maxCaptureBytes);
      if (!onLine) return;
      const lines = (partial + text).split(/\r?\n|\r/);
      partial = lines.pop() ?? "";
      for (const line of lines) if (line.trim()) onLine(line);
    };
    child.stdout?.on("data", collect("stdout"));
    child.stderr?.on("data", collect("stderr"));
    child.on("error", reject);
    child.on("close", (code, signal) => resolvePromise({ code, signal, ...out }));
  });
}

/** Last `count` non-empty lines of a text, for error messages. */
export function lastLines(text: string, count: number): string {
  return text
    .split("\n")
    .filter((l) => l.trim())
    .slice(-count)
    .join("\n");
}

/** Runs a build step and throws `internal` with the tail of its output when it fails. */
export async function runChecked(
  what: string,
  cmd: string,
  args: string[],
  options: RunOptions = {},
): Promise<CommandResult> {
  let result: CommandResult;
  try {
    result = await runCommand(cmd, args, options);
  } catch (error) {
    throw new PyroError("unavailable", `${what}: cannot run ${cmd} (${(error as Error).message})`);
  }
  if (result.code !== 0) {
    const tail = lastLines(`${result.stdout}\n${result.stderr}`, 15);
    throw new PyroError("internal", `${what} failed (${cmd} exited ${result.code}):\n${tail}`);
  }
  return result;
}
