import type { z } from "zod";
import type { ErrorCode } from "./errors.js";

/**
 * What a caller may assume about an operation, shown to MCP clients as tool annotations
 * (hosts use them to decide what to run without asking). Every hint is required, so an
 * operation added without thinking about them does not compile. They describe the worst
 * the tool may do with any arguments, not what one call happens to do.
 */
export interface OperationAnnotations {
  /** A short human title, e.g. "Run a command in a fresh VM". */
  title: string;
  /** It changes nothing: lists, status, reads, diffs, logs. */
  readOnlyHint: boolean;
  /**
   * It may delete or overwrite something that existed before the call: files in
   * /workspace (commands it runs, writes, patches, resets), VMs, snapshots, a host path,
   * running processes (stop, signal). False when it only adds (create, open, snapshot).
   */
  destructiveHint: boolean;
  /**
   * Calling it again with the same arguments has no further effect (a second delete finds
   * nothing; a second start finds it started). False when each call adds or runs anew.
   */
  idempotentHint: boolean;
  /**
   * Guest programs it starts or boots may reach networks beyond the host: it gives the
   * guest network (run/create with network), boots a VM that may have it (start, reset),
   * or runs guest programs in one (exec, service start, shell input). Reaching the
   * package mirror to build an environment counts too.
   */
  openWorldHint: boolean;
}

/**
 * One public operation: its names on each surface, its params and result schemas (with
 * descriptions and defaults) and the error codes it can raise. The SDK types, the MCP tool
 * registration and the CLI flags are all derived from these definitions.
 */
export interface Operation<P extends z.ZodType, R extends z.ZodType> {
  sdkMethod: string;
  mcpTool: string | undefined;
  cliCommand: string | undefined;
  /** One or two plain imperative sentences saying when to use it. */
  description: string;
  annotations: OperationAnnotations;
  params: P;
  result: R;
  errors: readonly ErrorCode[];
  /** Params the `workspace-core` MCP profile leaves out of its narrowed schema. */
  coreOmits?: readonly string[];
}

export function defineOperation<P extends z.ZodType, R extends z.ZodType>(op: Operation<P, R>) {
  return op;
}

/** Annotations of an operation that changes nothing (and so is idempotent and closed). */
export function readOnly(title: string): OperationAnnotations {
  return {
    title,
    readOnlyHint: true,
    destructiveHint: false,
    idempotentHint: true,
    openWorldHint: false,
  };
}

/** Annotations of an operation that changes something: each hint stated, none defaulted. */
export function changes(
  title: string,
  hints: { destructive: boolean; idempotent: boolean; openWorld: boolean },
): OperationAnnotations {
  return {
    title,
    readOnlyHint: false,
    destructiveHint: hints.destructive,
    idempotentHint: hints.idempotent,
    openWorldHint: hints.openWorld,
  };
}
