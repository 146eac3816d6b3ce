/**
 * The `vm_run` tool as a framework adapter hands it to a model: the same name and
 * arguments as pyro's MCP tool, narrowed to what a model should choose (the other params
 * keep their contract defaults: 1 vCPU, 1024 MiB, 30 s timeout, 600 s TTL). The OpenAI
 * and LangChain examples share it, so each of them is only the glue its framework needs.
 */
import { isPyroError, type Pyro, type RunOptions } from "pyro-mcp";

export const VM_RUN = {
  name: "vm_run",
  description:
    "Run one command in a fresh, isolated Debian 12 microVM and return its exit code and output. Use it for one-shot commands; the VM is deleted afterwards.",
  /** JSON Schema of the arguments, in the form strict function calling accepts. */
  parameters: {
    type: "object",
    properties: {
      environment: {
        type: "string",
        description:
          'Environment to boot: "debian:12" (with git), "debian:12-base" (minimal) or "debian:12-build" (compilers, make, python3).',
      },
      command: {
        type: "array",
        items: { type: "string" },
        description:
          'Program and arguments (argv), e.g. ["sh", "-c", "nproc"]. No shell is implied.',
      },
    },
    required: ["environment", "command"],
    additionalProperties: false,
  },
} as const;

/** Just the part of `Pyro` the adapters use, so tests can hand them a fake. */
export type VmRunner = Pick<Pyro, "runInVm">;

/**
 * Runs a model's `vm_run` arguments and returns the text the model reads next: the
 * command's outcome as JSON, or `[code] message` when pyro could not run it (the message
 * says what to change). A failing command is an outcome, not an error.
 */
export async function runForModel(pyro: VmRunner, args: RunOptions): Promise<string> {
  try {
    const r = await pyro.runInVm(args);
    return JSON.stringify({
      exit_code: r.exit_code,
      stdout: r.stdout,
      stderr: r.stderr,
      timed_out: r.timed_out,
      stdout_truncated: r.stdout_truncated,
      stderr_truncated: r.stderr_truncated,
    });
  } catch (error) {
    if (isPyroError(error)) return `[${error.code}] ${error.message}`;
    throw error;
  }
}
