import { z } from "zod";
import {
  argv,
  capFromField,
  count,
  defineOp,
  env,
  guestPath,
  processName,
  resultFrame,
  SIGNALS,
  waitState,
} from "./op.js";

/** The agent's PTY shell ops (protocol/README.md "Shells", issue8-protocol.md). */

export const MAX_SHELLS = 16;
export const SHELL_RING_BYTES = 1 << 20;
export const DEFAULT_SHELL_READ_BYTES = 65536;
export const MAX_SHELL_WRITE_BYTES = 32768;

const shellId = processName;
const terminalSize = z.number().int().min(1).max(1000);

export const shellOpen = defineOp(
  "shell_open",
  z.strictObject({
    shell_id: shellId,
    /** @default root's login shell from /etc/passwd */
    argv: argv.optional(),
    env: env.optional(),
    cwd: guestPath.optional(),
    /** @default 120 */
    cols: terminalSize.optional(),
    /** @default 30 */
    rows: terminalSize.optional(),
  }),
  resultFrame({ shell_id: shellId, pid: z.number().int().positive() }),
);

/**
 * `stdout` frames with the bytes `[cursor, next_cursor)` of the shell's output, then this.
 * Cursors are absolute byte offsets since the shell opened.
 */
export const shellRead = defineOp(
  "shell_read",
  z.strictObject({
    shell_id: shellId,
    cursor: z.number().int().nonnegative(),
    max_bytes: z.number().int().min(1).max(SHELL_RING_BYTES).optional(),
  }),
  resultFrame({
    shell_id: shellId,
    cursor: count,
    next_cursor: count,
    available: count,
    /** The asked cursor was older than the ring's oldest byte. */
    truncated: z.boolean(),
    ...waitState,
  }).refine((r) => r.cursor <= r.next_cursor && r.next_cursor <= r.available, {
    message: "shell_read cursors out of order",
  }),
  {
    stdoutCap: capFromField("max_bytes", DEFAULT_SHELL_READ_BYTES, 1, SHELL_RING_BYTES),
    stderrCap: () => 0,
  },
);

export const shellWrite = defineOp(
  "shell_write",
  z.strictObject({
    shell_id: shellId,
    data: z.string().refine((data) => Buffer.byteLength(data, "utf8") <= MAX_SHELL_WRITE_BYTES, {
      message: `data is over ${MAX_SHELL_WRITE_BYTES} bytes of UTF-8`,
    }),
  }),
  resultFrame({ shell_id: shellId, bytes_written: count }),
);

/** Sent to the terminal's foreground process group (else the shell's own group). */
export const shellSignal = defineOp(
  "shell_signal",
  z.strictObject({ shell_id: shellId, signal: z.enum(SIGNALS) }),
  resultFrame({ shell_id: shellId }),
);

export const shellClose = defineOp(
  "shell_close",
  z.strictObject({ shell_id: shellId }),
  resultFrame({ shell_id: shellId, closed: z.literal(true) }),
);

export const ShellEntrySchema = z.object({
  shell_id: shellId,
  pid: z.number().int().positive(),
  cols: terminalSize,
  rows: terminalSize,
  available: count,
  ...waitState,
});
export type ShellEntry = z.infer<typeof ShellEntrySchema>;

export const shellList = defineOp(
  "shell_list",
  z.strictObject({}),
  resultFrame({ shells: z.array(ShellEntrySchema).max(MAX_SHELLS) }),
);
