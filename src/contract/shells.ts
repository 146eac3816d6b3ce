import { z } from "zod";
import { count, exitCode, integer } from "./fields.js";
import { changes, defineOperation, readOnly } from "./operation.js";
import { NAME_PATTERN } from "./workspace.js";

/**
 * Interactive shells: a PTY in a started workspace, written to and read from across many
 * calls (and many CLI processes). Output is addressed by byte cursors into a bounded ring
 * kept in the guest, so a caller that reads late loses the oldest output, never the newest.
 */

/** Limits the guest agent enforces too (protocol/README.md, shell ops). */
export const SHELL_LIMITS = {
  max_size: 1000,
  /** Bytes of one write: the agent takes at most 32 KiB per `shell_write`. */
  max_input_bytes: 32 * 1024,
  /** Characters of one read; the host asks the guest for up to 4 bytes per character. */
  max_chars: 256 * 1024,
  max_wait_for_idle_ms: 30_000,
  /** Shells per workspace, open or exited but not closed. */
  max_shells: 16,
} as const;

export const SHELL_SIGNALS = ["HUP", "INT", "TERM", "KILL"] as const;

const workspaceId = z
  .string()
  .min(1)
  .describe('The workspace id returned by workspace_create, e.g. "ws_0123456789ab".');
const shellId = z
  .string()
  .regex(NAME_PATTERN, `shell ids match ${NAME_PATTERN.source}`)
  .describe('The shell id returned by shell_open, e.g. "sh-0123abcd".');
const size = (what: string, fallback: number) =>
  z
    .number()
    .int()
    .min(1)
    .max(SHELL_LIMITS.max_size)
    .default(fallback)
    .describe(`Terminal ${what}, 1 to ${SHELL_LIMITS.max_size}.`);

export const ShellState = z.enum(["running", "exited"]);

export const ShellRecord = z.object({
  workspace_id: z.string(),
  shell_id: z.string(),
  state: ShellState.describe("running, or exited: its output stays readable until closed."),
  cwd: z.string(),
  cols: integer(1, SHELL_LIMITS.max_size),
  rows: integer(1, SHELL_LIMITS.max_size),
  started_at: z.string(),
  exit_code: exitCode().nullable().describe("The shell's exit status once it exited."),
  signal: z.string().nullable().describe("The signal that ended the shell, if one did."),
});

export const OpenShellParams = z.object({
  workspace_id: workspaceId,
  cwd: z
    .string()
    .default("/workspace")
    .describe("Working directory, relative to /workspace or absolute under it."),
  cols: size("columns", 120),
  rows: size("rows", 30),
  secret_env: z
    .record(z.string(), z.string())
    .default({})
    .describe("Environment variables to fill from secrets: {ENV_VAR: SECRET_NAME}."),
});

export const ShellIdParams = z.object({ workspace_id: workspaceId, shell_id: shellId });

export const ReadShellParams = ShellIdParams.extend({
  cursor: integer(0)
    .default(0)
    .describe("Byte offset to read from: 0, or the next_cursor of the previous read."),
  max_chars: z
    .number()
    .int()
    .min(1)
    .max(SHELL_LIMITS.max_chars)
    .default(65536)
    .describe("Return at most this many characters; read again from next_cursor for more."),
  plain: z
    .boolean()
    .default(false)
    .describe("Strip terminal escape codes and turn CR/LF and backspaces into plain lines."),
  wait_for_idle_ms: z
    .number()
    .int()
    .min(0)
    .max(SHELL_LIMITS.max_wait_for_idle_ms)
    .default(0)
    .describe(
      "First wait until the shell has printed nothing for this many ms (0: read at once). Use it after a write to get a command's whole output.",
    ),
});

export const ReadShellResult = z.object({
  workspace_id: z.string(),
  shell_id: z.string(),
  output: z.string().describe("The shell's output from cursor to next_cursor, as text."),
  cursor: integer(0).describe(
    "Where this output starts (later than asked when older output was dropped).",
  ),
  next_cursor: integer(0).describe("Pass this as cursor to the next read."),
  truncated: z
    .boolean()
    .describe("Output between the asked cursor and `cursor` was dropped: the guest keeps 1 MiB."),
  has_more: z.boolean().describe("More output is already waiting past next_cursor."),
  state: ShellState,
  exit_code: exitCode().nullable(),
  signal: z.string().nullable(),
});

export const WriteShellParams = ShellIdParams.extend({
  input: z
    .string()
    .refine(
      // One byte stays free for the newline, so a write is always one guest request.
      (text) => Buffer.byteLength(text, "utf8") < SHELL_LIMITS.max_input_bytes,
      `input is 32 KiB or more; send it in parts, or write it to a file (workspace_file_write) and run that`,
    )
    .describe("Text to type into the shell, e.g. a command line (under 32 KiB)."),
  append_newline: z
    .boolean()
    .default(true)
    .describe("Press Enter after the input (false to send it as is, e.g. for a prompt)."),
});

export const SignalShellParams = ShellIdParams.extend({
  signal_name: z
    .enum(SHELL_SIGNALS)
    .default("INT")
    .describe("Signal for the shell's foreground program: INT is Ctrl-C."),
});

const op = defineOperation;
const SHELL_ERRORS = [
  "invalid_argument",
  "not_found",
  "conflict",
  "busy",
  "unavailable",
  "unsupported",
  "guest_error",
  "internal",
] as const;

export const openShell = op({
  sdkMethod: "openShell",
  mcpTool: "shell_open",
  cliCommand: "workspace shell open",
  annotations: changes("Open a shell", { destructive: false, idempotent: false, openWorld: false }),
  description:
    "Open an interactive shell (a terminal) in a started workspace. Use it for REPLs, debuggers and programs that prompt; use workspace_exec for one-off commands.",
  params: OpenShellParams,
  result: ShellRecord,
  errors: SHELL_ERRORS,
});

export const readShell = op({
  sdkMethod: "readShell",
  mcpTool: "shell_read",
  cliCommand: "workspace shell read",
  annotations: readOnly("Read shell output"),
  description:
    "Read a shell's output from a cursor; pass the returned next_cursor to the next read. Set plain for text without terminal escape codes.",
  params: ReadShellParams,
  result: ReadShellResult,
  errors: SHELL_ERRORS,
});

export const writeShell = op({
  sdkMethod: "writeShell",
  mcpTool: "shell_write",
  cliCommand: "workspace shell write",
  annotations: changes("Type into a shell", {
    destructive: true,
    idempotent: false,
    openWorld: true,
  }),
  description:
    "Type input into a shell, followed by Enter unless append_newline is false. Read its output with shell_read.",
  params: WriteShellParams,
  result: z.object({
    workspace_id: z.string(),
    shell_id: z.string(),
    bytes_written: count(),
  }),
  errors: SHELL_ERRORS,
});

export const signalShell = op({
  sdkMethod: "signalShell",
  mcpTool: "shell_signal",
  cliCommand: "workspace shell signal",
  annotations: changes("Signal a shell's program", {
    destructive: true,
    idempotent: false,
    openWorld: false,
  }),
  description:
    "Send a signal to the program running in a shell's foreground (INT, like Ctrl-C, by default).",
  params: SignalShellParams,
  result: z.object({
    workspace_id: z.string(),
    shell_id: z.string(),
    signal_name: z.enum(SHELL_SIGNALS),
  }),
  errors: SHELL_ERRORS,
});

export const closeShell = op({
  sdkMethod: "closeShell",
  mcpTool: "shell_close",
  cliCommand: "workspace shell close",
  annotations: changes("Close a shell", { destructive: true, idempotent: true, openWorld: false }),
  description: "Close a shell, ending every program in it.",
  params: ShellIdParams,
  result: z.object({ workspace_id: z.string(), shell_id: z.string(), closed: z.literal(true) }),
  errors: ["invalid_argument", "not_found", "conflict", "guest_error", "internal"],
});
