import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { asPyroError } from "../contract/errors.js";
import { stableJson } from "../util/fs.js";

/**
 * A successful call: `structuredContent` is the contract's result object, and the text
 * block carries the same facts for clients that only show text (the MCP spec asks for
 * both when a tool declares an output schema).
 */
export function successResult(value: Record<string, unknown>): CallToolResult {
  return { structuredContent: value, content: [{ type: "text", text: renderText(value) }] };
}

/**
 * A failed call as a tool error the model can read and act on: `[code] message`, where
 * the PyroError message already says what to do next.
 */
export function errorResult(error: unknown, tool: string): CallToolResult {
  const failure = asPyroError(error, `${tool} failed`);
  return {
    isError: true,
    content: [{ type: "text", text: `[${failure.code}] ${failure.message}` }],
  };
}

interface CommandOutcome {
  exit_code: number;
  stdout: string;
  stderr: string;
  timed_out?: boolean;
  stdout_truncated?: boolean;
  stderr_truncated?: boolean;
  duration_ms?: number;
}

/** Command results (vm_run, vm_exec, workspace_exec) read best as a terminal would show them. */
function renderText(value: Record<string, unknown>): string {
  return isCommandOutcome(value) ? renderCommand(value) : stableJson(value);
}

function isCommandOutcome(
  value: Record<string, unknown>,
): value is Record<string, unknown> & CommandOutcome {
  return (
    typeof value.exit_code === "number" &&
    typeof value.stdout === "string" &&
    typeof value.stderr === "string"
  );
}

export function renderCommand(outcome: CommandOutcome): string {
  const facts = [`exit_code: ${outcome.exit_code}`];
  if (outcome.timed_out) facts.push("timed out (killed after timeout_seconds)");
  if (outcome.duration_ms !== undefined) facts.push(`${outcome.duration_ms} ms`);
  return [
    facts.join(", "),
    stream("stdout", outcome.stdout, outcome.stdout_truncated),
    stream("stderr", outcome.stderr, outcome.stderr_truncated),
  ].join("\n");
}

function stream(name: string, text: string, truncated: boolean | undefined): string {
  if (text === "") return `${name}: (empty)`;
  const body = text.endsWith("\n") ? text.slice(0, -1) : text;
  return `${name}:${truncated ? " (truncated)" : ""}\n${body}`;
}
