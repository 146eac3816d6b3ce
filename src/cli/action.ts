import { InvalidArgumentError, type Command } from "commander";
import { escapeLine, escapeText } from "./escape.js";
import { EXIT, printJson, reportError } from "./output.js";

export type Options = Record<string, unknown>;

/**
 * The shape of almost every command: call one facade method, then print its result as
 * JSON (`--json`) or for a person. Errors go through the one error mapper.
 */
export function action<R>(
  run: (positional: string[], options: Options) => Promise<R>,
  human: (result: R, options: Options) => void,
  exitCodeOf: (result: R) => number = () => EXIT.ok,
) {
  return async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const options = command.opts();
    const json = options.json === true;
    try {
      const result = await run(args.slice(0, -2) as string[], options);
      if (json) printJson(result);
      else human(result, options);
      process.exitCode = exitCodeOf(result);
    } catch (error) {
      process.exitCode = reportError(error, { json });
    }
  };
}

export const jsonOption = ["--json", "print the result payload as JSON"] as const;

/** `--label K=V` style repeatable flags, collected into an object. */
export function collectPairs(flag: string) {
  return (value: string, previous: Record<string, string> = {}) => {
    const eq = value.indexOf("=");
    if (eq <= 0) throw new InvalidArgumentError(`${flag} needs KEY=VALUE, got "${value}"`);
    return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
  };
}

/**
 * `--secret-env NAME[=ENV_VAR]` (CONTRACT.md): expose secret NAME as ENV_VAR (default:
 * the same name), collected as the contract's `{ENV_VAR: SECRET_NAME}`.
 */
export function collectSecretEnv(value: string, previous: Record<string, string> = {}) {
  const [name, envVar = name] = value.split("=", 2) as [string, string?];
  if (!name)
    throw new InvalidArgumentError(`--secret-env needs NAME or NAME=ENV_VAR, got "${value}"`);
  return { ...previous, [envVar]: name };
}

/** Repeatable flags collected into a list. */
export function collectList(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * A human-mode block on stdout. Control characters are escaped here once more (newlines
 * kept), so no line the CLI prints can carry a raw escape sequence; fields that must stay
 * on one line are escaped by the caller with `escapeLine`.
 */
export function print(text: string): void {
  const safe = escapeText(text);
  process.stdout.write(safe.endsWith("\n") ? safe : `${safe}\n`);
}

/** The same for stderr (notes beside a result, log tails). */
export function printNote(text: string): void {
  const safe = escapeText(text);
  process.stderr.write(safe.endsWith("\n") ? safe : `${safe}\n`);
}

/** `key: value` lines for a record, in the record's own field order. */
export function printRecord(record: object): void {
  const lines = Object.entries(record).map(([key, value]) => {
    const shown =
      value === null ? "-" : typeof value === "object" ? JSON.stringify(value) : String(value);
    return `${key}: ${escapeLine(shown)}`;
  });
  print(lines.join("\n"));
}
