import { z } from "zod";
import { PyroError } from "./errors.js";

/**
 * Parses caller input against an operation's schema. A violation becomes
 * `invalid_argument` naming the field and what was expected.
 */
export function parseParams<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const field = issue.path.length ? issue.path.join(".") : "(params)";
    return `${field}: ${issue.message}`;
  });
  throw new PyroError("invalid_argument", `invalid arguments: ${issues.join("; ")}`, {
    details: {
      issues: result.error.issues.map((i) => ({ field: i.path.join("."), message: i.message })),
    },
  });
}
