import { spawn } from "node:child_process";
import { resolve } from "node:path";

export const CLI_ENTRY = resolve("dist/cli/main.js");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command` as a subprocess with `env`, and collects its exit code and output. */
export function runCommand(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/** Runs the built `pyro` CLI as a subprocess, the way a user does. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCommand(process.execPath, [CLI_ENTRY, ...args], { ...process.env, ...env });
}

/**
 * `pyro ...` in a new mount namespace where `file` is bind-mounted over `target` (say
 * /etc/hosts): a shim the CLI starts keeps that namespace. Needs root.
 */
export function runCliWithMount(file: string, target: string, args: string[]): Promise<CliResult> {
  const mount = ["-m", "sh", "-c", 'mount --bind "$0" "$1" && shift && exec "$@"', file, target];
  return runCommand("unshare", [...mount, process.execPath, CLI_ENTRY, ...args]);
}
