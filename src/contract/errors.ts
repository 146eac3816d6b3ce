/** Stable error codes shared by every surface (CLI exit codes, MCP error results, SDK). */
export const ERROR_CODES = [
  "invalid_argument",
  "not_found",
  "conflict",
  "timeout",
  "unavailable",
  "guest_error",
  "unsupported",
  "busy",
  "internal",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** What each code means to a caller, and what to do about it. */
export const ERROR_CODE_MEANINGS: Record<ErrorCode, string> = {
  invalid_argument: "A parameter is wrong; fix it as the message says and call again.",
  not_found:
    "The VM, workspace, file, service or shell does not exist; list them to see what does.",
  conflict:
    "The target is in the wrong state (stopped, expired...); the message names the call that fixes that.",
  timeout: "The call ran out of time; retry with a longer timeout, or stop and start a stuck VM.",
  unavailable:
    "Something the call needs is missing on this host or not implemented yet; the message says what.",
  guest_error:
    "The guest failed or answered something malformed; the VM may need a stop and start.",
  unsupported:
    "The guest agent does not know this operation: its environment was built with an older pyro. Rebuild the environment (or recreate the workspace) with this pyro.",
  busy: "The guest is at a limit (32 services, 16 shells, a full queue) or the name is in use; stop or close something, or pick another name, and call again.",
  internal: "A bug or an unexpected host failure; the message has the detail.",
};

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
