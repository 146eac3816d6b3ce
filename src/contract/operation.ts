import type { z } from "zod";
import type { ErrorCode } from "./errors.js";

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
  params: P;
  result: R;
  errors: readonly ErrorCode[];
  /** Params the `workspace-core` MCP profile leaves out of its narrowed schema. */
  coreOmits?: readonly string[];
}

export function defineOperation<P extends z.ZodType, R extends z.ZodType>(op: Operation<P, R>) {
  return op;
}
