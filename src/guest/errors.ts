import { z } from "zod";
import { PyroError, type ErrorCode } from "../contract/errors.js";
import { guestText } from "./ops/op.js";

/** An `error` terminal frame, from the agent or the shim. */
export const ErrorFrameSchema = z.object({
  type: z.literal("error"),
  code: z.string().max(64),
  message: guestText(),
  errno: z.number().int().optional(),
  /**
   * The shim's refusal while it saves the VM: what for (`shim/supervisor.ts`). Only a
   * hint to wait and retry once; a guest that forges it gains no more than a slow reply.
   */
  saving: z.enum(["ttl", "pause", "fork"]).optional(),
});

/**
 * The one table from wire error codes to the host's `PyroError` codes. The agent's codes
 * (protocol/README.md) come first; the shim forwards the host codes it raises itself.
 * The agent's `internal` is the guest's failure, not the host's, so it is `guest_error`;
 * any code missing here is too.
 */
export const WIRE_ERROR_CODES: ReadonlyMap<string, ErrorCode> = new Map<string, ErrorCode>([
  ["invalid_argument", "invalid_argument"],
  ["not_found", "not_found"],
  ["unsupported", "unsupported"],
  ["busy", "busy"],
  ["internal", "guest_error"],
  // Raised by the shim on the host side of the same connection.
  ["conflict", "conflict"],
  ["timeout", "timeout"],
  ["unavailable", "unavailable"],
  ["guest_error", "guest_error"],
]);

/** What the agent's own message for these codes leaves out: what the caller can do. */
const HINTS: Partial<Record<ErrorCode, string>> = {
  unsupported:
    "the guest agent does not support this operation; rebuild the environment (or recreate the workspace) with this version of pyro",
};

/** An `error` frame from the agent or shim, as a PyroError with a host-side code. */
export function agentError(message: Record<string, unknown>): PyroError {
  const parsed = ErrorFrameSchema.safeParse(message);
  if (!parsed.success) return new PyroError("guest_error", "malformed error from the guest");
  const { code, message: text, errno, saving } = parsed.data;
  const mapped = WIRE_ERROR_CODES.get(code) ?? "guest_error";
  const hint = HINTS[mapped];
  return new PyroError(mapped, hint ? `${text}: ${hint}` : text, {
    details: {
      guest_code: code,
      ...(errno === undefined ? {} : { errno }),
      ...(saving === undefined ? {} : { saving }),
    },
  });
}
