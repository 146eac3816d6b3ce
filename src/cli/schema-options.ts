import { InvalidArgumentError, Option, type Command } from "commander";
import { z } from "zod";

/**
 * CLI flags generated from an operation's zod schema: `vcpu_count` becomes
 * `--vcpu-count N` with the schema's description and default, so names and defaults
 * exist only in the contract.
 */
export function addSchemaOptions(command: Command, schema: z.ZodObject, fields: string[]): Command {
  for (const field of fields) {
    const fieldSchema = schema.shape[field] as z.ZodType | undefined;
    if (!fieldSchema) throw new Error(`contract has no field ${field}`);
    const { kind, description, defaultValue } = describeField(fieldSchema);
    const flag = `--${field.replace(/_/g, "-")}`;
    const option =
      kind === "boolean"
        ? new Option(flag, description)
        : new Option(`${flag} <${kind === "number" ? "n" : "value"}>`, description);
    if (kind === "number") option.argParser(parseIntegerFlag(flag));
    if (defaultValue !== undefined && kind !== "boolean") option.default(defaultValue);
    command.addOption(option);
  }
  return command;
}

/** Picks the generated flags' values back out, keyed by contract field name. */
export function schemaOptionValues(options: Record<string, unknown>, fields: string[]) {
  const values: Record<string, unknown> = {};
  for (const field of fields) {
    const key = field.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    if (options[key] !== undefined) values[field] = options[key];
  }
  return values;
}

function describeField(schema: z.ZodType): {
  kind: string;
  description: string;
  defaultValue: unknown;
} {
  let inner: z.ZodType = schema;
  let defaultValue: unknown;
  const description = schema.description ?? "";
  while (inner instanceof z.ZodDefault || inner instanceof z.ZodOptional) {
    if (inner instanceof z.ZodDefault) defaultValue = inner.def.defaultValue;
    inner = inner.unwrap() as z.ZodType;
  }
  const kind =
    inner instanceof z.ZodNumber ? "number" : inner instanceof z.ZodBoolean ? "boolean" : "string";
  return { kind, description: description || (inner.description ?? ""), defaultValue };
}

function parseIntegerFlag(flag: string) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim())) {
      throw new InvalidArgumentError(`${flag} needs a whole number, got "${value}"`);
    }
    return Number.parseInt(value, 10);
  };
}
