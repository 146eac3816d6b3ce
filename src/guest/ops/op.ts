import { z } from "zod";

/**
 * One operation of the framed protocol: its name on the wire, the schema of the request
 * the host sends and the schema of the terminal frame that ends it. The terminal frame
 * comes from the (untrusted) guest or shim, so it is always parsed with `result`, never
 * cast; the request schema is checked before anything is sent. Request schemas are strict
 * (an unknown field is refused), as the agent's own field allowlists are.
 */
export class Op<Name extends string, Req extends z.ZodType, Res extends z.ZodType> {
  constructor(
    readonly name: Name,
    readonly request: Req,
    readonly result: Res,
    /** What the op may stream back and how long it may take (`guest/bounds.ts`). */
    readonly output: OutputPolicy = NO_OUTPUT,
  ) {}
}

// The parameter types are only constraints: `any` keeps every concrete Op assignable.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyOp = Op<string, z.ZodType<any>, z.ZodType<any>>;

/** The fields a caller gives (without `op`, which comes from the definition). */
export type OpRequest<O extends AnyOp> = z.input<O["request"]>;
/** The parsed terminal frame. */
export type OpResult<O extends AnyOp> = z.output<O["result"]>;

/**
 * The host's own bounds for a request, read from the request it sent: bytes of `stdout` /
 * `stderr` frames it accepts on the channel, and the op's own timeout if it has one (it
 * replaces the default deadline; the reply grace is added to either).
 */
export interface OutputPolicy {
  stdoutCap(message: Record<string, unknown>): number;
  stderrCap(message: Record<string, unknown>): number;
  timeoutMs?(message: Record<string, unknown>): number | undefined;
}

export const NO_OUTPUT: OutputPolicy = { stdoutCap: () => 0, stderrCap: () => 0 };

export function defineOp<Name extends string, Req extends z.ZodType, Res extends z.ZodType>(
  name: Name,
  request: Req,
  result: Res,
  output?: OutputPolicy,
): Op<Name, Req, Res> {
  return new Op(name, request, result, output);
}

/** A request field that is an integer in [min, max], or undefined when it is anything else. */
export function boundedInteger(value: unknown, min: number, max: number): number | undefined {
  return Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max
    ? (value as number)
    : undefined;
}

/** The cap of a stream whose size a request field chooses within [min, max]. */
export function capFromField(field: string, fallback: number, min: number, max: number) {
  return (message: Record<string, unknown>) => boundedInteger(message[field], min, max) ?? fallback;
}

/** `{"type":"result"}` plus the op's own fields. */
export function resultFrame<T extends z.ZodRawShape>(shape: T) {
  return z.object({ type: z.literal("result"), ...shape });
}

// ---- field schemas shared by several ops (bounds of protocol/README.md) ----

/** Guest text the host keeps or shows: bounded so a hostile guest cannot bloat the host. */
export const guestText = (max = 4096) => z.string().max(max);
export const count = z.number().int().nonnegative();
/** The latest time a JavaScript Date holds: the host turns these into ISO strings. */
export const unixMs = z.number().int().nonnegative().max(8.64e15);
/** Signal names are an allowlist on the agent's side; the host still bounds what it reads. */
export const signalName = z
  .string()
  .max(16)
  .regex(/^[A-Z0-9]+$/);
export const exitCode = z.number().int().min(0).max(255);
/** How a service or shell is: the agent writes these three together (pyro_write_wait_state). */
export const waitState = {
  state: z.enum(["running", "exited"]),
  exit_code: exitCode.nullable(),
  signal: signalName.nullable(),
};
/** Service names and shell ids (issue8-protocol.md "Names"). */
export const processName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
export const SIGNALS = ["INT", "TERM", "HUP", "KILL", "QUIT", "USR1", "USR2"] as const;
export const argv = z.array(z.string().max(65536)).min(1).max(4096);
export const env = z.record(z.string(), z.string());
export const guestPath = z.string().min(1).max(4096);
