import { z } from "zod";
import { DEFAULTS, LIMITS } from "./defaults.js";

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
export const vcpuCount = z
  .number()
  .int()
  .min(1)
  .default(DEFAULTS.vcpu_count)
  .describe("Virtual CPUs, 1 up to the host's core count.");
export const memMib = z
  .number()
  .int()
  .min(LIMITS.min_mem_mib)
  .default(DEFAULTS.mem_mib)
  .describe(`Guest memory in MiB, at least ${LIMITS.min_mem_mib}.`);
export const timeoutSeconds = z
  .number()
  .int()
  .positive()
  .max(LIMITS.max_timeout_seconds)
  .default(DEFAULTS.timeout_seconds)
  .describe("Kill the command (its whole process group) after this many seconds.");
export const ttlSeconds = z
  .number()
  .int()
  .positive()
  .max(LIMITS.max_ttl_seconds)
  .default(DEFAULTS.ttl_seconds)
  .describe("The VM is destroyed this many seconds after it starts, whatever happens.");
