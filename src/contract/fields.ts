import { z } from "zod";
import { DEFAULTS, LIMITS } from "./defaults.js";

/**
 * A whole number of at least `min`, and at most `max` when there is a real limit. Every
 * integer of the contract is one of these, so MCP clients see `{"type": "integer",
 * "minimum": ...}` with its real bounds: zod's bare `.int()` would show each one the
 * safe-integer range (±9007199254740991) instead, which says nothing. Without `max` the
 * check is the same (a safe integer) but is not rendered as a bound.
 */
export function integer(min: number, max?: number): z.ZodNumber {
  if (max !== undefined) return z.number().int().min(min).max(max);
  return z
    .number()
    .min(min)
    .refine(Number.isSafeInteger, "expected a whole number")
    .meta({ type: "integer" });
}

/** Counts of things (entries, commands, bytes): 0 up. */
export const count = () => integer(0);
/** A process's exit status as a shell reports it: 0-255 (128+N when signal N ended it). */
export const exitCode = () => integer(0, 255);
/** A Linux process id: 1 up to PID_MAX_LIMIT (2^22 on 64-bit kernels). */
export const pid = () => integer(1, 2 ** 22);
/** A TCP port number. */
export const port = () => integer(1, 65535);

/** Fields shared by several operations: one definition, one description, one default. */
export const environment = z
  .string()
  .min(1)
  .describe('Environment name, e.g. "debian:12" (see `pyro env list`).');
export const command = z
  .array(z.string())
  .min(1, "command needs at least one element: the program to run")
  .refine(
    (argv) => Buffer.byteLength(JSON.stringify(argv)) <= LIMITS.max_command_bytes,
    `command is longer than ${LIMITS.max_command_bytes / 1024} KiB; write the script to a file (workspace_file_write) and run that`,
  )
  .describe('Program and arguments (argv), e.g. ["git", "--version"]. No shell is implied.');
export const vcpuCount = integer(1)
  .default(DEFAULTS.vcpu_count)
  .describe("Virtual CPUs, 1 up to the host's core count.");
export const memMib = integer(LIMITS.min_mem_mib)
  .default(DEFAULTS.mem_mib)
  .describe(
    `Guest memory in MiB, at least ${LIMITS.min_mem_mib} and at most the host's memory less a reserve.`,
  );
export const timeoutSeconds = integer(1, LIMITS.max_timeout_seconds)
  .default(DEFAULTS.timeout_seconds)
  .describe("Kill the command (its whole process group) after this many seconds.");
export const ttlSeconds = integer(1, LIMITS.max_ttl_seconds)
  .default(DEFAULTS.ttl_seconds)
  .describe("The VM is destroyed this many seconds after it starts, whatever happens.");

/** How much of a file one read returns (workspace files and the offline disk tools). */
export const readMaxBytes = integer(1, 16 << 20)
  .default(65536)
  .describe("Read at most this many bytes.");

/** `--cold`: a full boot even when a memory template fits. */
export const cold = z
  .boolean()
  .default(false)
  .describe("Boot cold even when a memory template fits (slower; for comparison or debugging).");
