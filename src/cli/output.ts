import { isPyroError } from "../contract/errors.js";
import { stableJson } from "../util/json.js";
import { escapeText } from "./escape.js";

export const EXIT = { ok: 0, failure: 1, usage: 2, pyroFailedInRun: 125 } as const;

/** A command-line mistake: exit status 2 (125 under `run`). */
export class UsageError extends Error {
  override name = "UsageError";
}

export function printJson(value: unknown): void {
  process.stdout.write(`${stableJson(value)}\n`);
}

/** One place maps failures to output and exit status. */
export function reportError(error: unknown, options: { json: boolean; exitCode?: number }): number {
  const usage = error instanceof UsageError;
  const code = isPyroError(error) ? error.code : usage ? "invalid_argument" : "internal";
  const message = error instanceof Error ? error.message : String(error);
  if (options.json) {
    printJson({
      error: { code, message, ...(isPyroError(error) ? { details: error.details } : {}) },
    });
  } else {
    // Messages carry guest text (paths, agent errors): escaped, so they cannot drive the terminal.
    process.stderr.write(`pyro: error [${code}]: ${escapeText(message)}\n`);
  }
  if (options.exitCode !== undefined) return options.exitCode;
  return usage || code === "invalid_argument" ? EXIT.usage : EXIT.failure;
}
