import type { ExecOutput } from "../guest/client.js";

/** Exit status reported for a command killed by its timeout (like `timeout(1)`). */
export const TIMEOUT_EXIT_CODE = 124;

const SIGNAL_NUMBERS: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ABRT: 6,
  KILL: 9,
  SEGV: 11,
  PIPE: 13,
  TERM: 15,
};

/** A shell-style status: the exit code, 124 on timeout, or 128+N when killed by signal N. */
export function exitCodeOf(output: Pick<ExecOutput, "exit_code" | "signal" | "timed_out">): number {
  if (output.timed_out) return TIMEOUT_EXIT_CODE;
  if (output.exit_code !== null) return output.exit_code;
  return 128 + (output.signal ? (SIGNAL_NUMBERS[output.signal] ?? 0) : 0);
}

/** The contract's command result fields, shared by vm_run, vm_exec and workspace_exec. */
export function commandResult(command: string[], output: ExecOutput) {
  return {
    command,
    exit_code: exitCodeOf(output),
    stdout: output.stdout.toString("utf8"),
    stderr: output.stderr.toString("utf8"),
    duration_ms: Math.round(output.duration_ms),
    timed_out: output.timed_out,
    stdout_truncated: output.stdout_truncated,
    stderr_truncated: output.stderr_truncated,
    execution_mode: "guest" as const,
  };
}
