/** Stable error codes shared by every surface (CLI exit codes, MCP error results, SDK). */
export const ERROR_CODES = [
  "invalid_argument",
  "not_found",
  "conflict",
  "timeout",
  "unavailable",
  "guest_error",
  "internal",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface PyroErrorOptions {
  /** Structured facts a caller can act on (field name, allowed range, known ids...). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

/**
 * The one error type the core throws. `message` says what happened and what to do;
 * surfaces print it as is, so it must never contain a secret.
 */
export class PyroError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: PyroErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PyroError";
    this.code = code;
    this.details = options.details ?? {};
  }

  toJSON(): { code: ErrorCode; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isPyroError(error: unknown): error is PyroError {
  return error instanceof PyroError;
}

/** Wraps an unknown failure as `internal`, keeping PyroErrors as they are. */
export function asPyroError(error: unknown, context: string): PyroError {
  if (error instanceof PyroError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new PyroError("internal", `${context}: ${detail}`, { cause: error });
}
