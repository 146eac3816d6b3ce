import { randomBytes } from "node:crypto";
import type { z } from "zod";
import { PyroError } from "../contract/errors.js";
import {
  OpenShellParams,
  ReadShellParams,
  ShellIdParams,
  SignalShellParams,
  WriteShellParams,
  type ReadShellResult,
} from "../contract/shells.js";
import { parseParams } from "../contract/validate.js";
import type { ChannelClient } from "../guest/client.js";
import { sleep } from "../util/process.js";
import { guestPath, normalizeWorkspacePath } from "../workspace/paths.js";
import {
  cutUtf8,
  leadingEscapeLength,
  plainText,
  unfinishedEscapeLength,
} from "../workspace/terminal-text.js";
import { readShellOutput, type ShellReadResult } from "../guest/shells.js";
import {
  closeGuestShell,
  listGuestShells,
  MAX_GUEST_READ_BYTES,
  openGuestShell,
  signalGuestShell,
  writeGuestShell,
} from "./shell-guest.js";
import {
  clearShellRecords,
  hasShellRecord,
  readShellRecord,
  removeShellRecord,
  writeShellRecord,
  type ShellRecord,
} from "./shell-store.js";
import type { WorkspaceManager } from "./workspaces.js";
import { redactedShellText, shellContext } from "../secrets/shell.js";
import { loadSecrets, resolveSecretEnv } from "../secrets/store.js";
import { redactError, redactorOf } from "../secrets/workspace.js";

export interface ShellManagerOptions {
  /** How often `wait_for_idle_ms` asks the guest for new output. @default 50 */
  idlePollMs?: number;
  /**
   * How much longer than `wait_for_idle_ms` a read may wait for a shell that keeps
   * printing, before it returns what there is. @default 30000
   */
  idleExtraWaitMs?: number;
}

type ReadResult = z.output<typeof ReadShellResult>;

/** Bytes a plain read fetches at least: longer than any escape sequence seen in practice. */
const PLAIN_MIN_BYTES = 64 * 1024;

/**
 * Interactive shells in a workspace: a PTY in the guest, driven by the agent's shell ops.
 * A shell outlives the call (and the CLI process) that opened it; every call connects to
 * the workspace's shim anew. Cursors are the guest's byte offsets; `max_chars`, `plain`
 * and `wait_for_idle_ms` are applied here on the host.
 */
export class ShellManager {
  private readonly idlePollMs: number;
  private readonly idleExtraWaitMs: number;

  constructor(
    private readonly workspaces: WorkspaceManager,
    options: ShellManagerOptions = {},
  ) {
    this.idlePollMs = options.idlePollMs ?? 50;
    this.idleExtraWaitMs = options.idleExtraWaitMs ?? 30_000;
    // A workspace's stop, reset and delete end its shells with its VM.
    workspaces.onBeforeStop((event) => clearShellRecords(event.id));
  }

  async open(input: z.input<typeof OpenShellParams>): Promise<ShellRecord> {
    const params = parseParams(OpenShellParams, input);
    const cwd = guestPath(normalizeWorkspacePath(params.cwd, "cwd"));
    const workspaceId = params.workspace_id;
    await this.workspaces.requireStarted(workspaceId);
    const secrets = await loadSecrets(workspaceId);
    const env = resolveSecretEnv(params.secret_env, secrets);
    const record: ShellRecord = {
      workspace_id: workspaceId,
      shell_id: `sh-${randomBytes(4).toString("hex")}`,
      state: "running",
      cwd,
      cols: params.cols,
      rows: params.rows,
      started_at: new Date().toISOString(),
      exit_code: null,
      signal: null,
    };
    // The record comes first: a guest shell without one was opened by a caller that
    // vanished before it could keep it, and nobody can name it again (see openInGuest).
    await writeShellRecord(record);
    try {
      await this.workspaces.withGuest(workspaceId, (client) => openInGuest(client, record, env));
    } catch (error) {
      await removeShellRecord(workspaceId, record.shell_id).catch(() => {});
      throw redactError(error, redactorOf(secrets));
    }
    await this.workspaces.touch(workspaceId);
    return record;
  }

  async read(input: z.input<typeof ReadShellParams>): Promise<ReadResult> {
    const params = parseParams(ReadShellParams, input);
    const record = await this.liveRecord(params);
    // With plain, escape sequences take bytes but no characters: a small max_chars still
    // fetches enough to see one to its end (shellText consumes it whole).
    const wanted = params.max_chars * 4;
    const maxBytes = Math.min(
      params.plain ? Math.max(wanted, PLAIN_MIN_BYTES) : wanted,
      MAX_GUEST_READ_BYTES,
    );
    const redactor = redactorOf(await loadSecrets(record.workspace_id));
    const { chunk, context } = await this.guestCall(record, "read", async (client) => {
      if (params.wait_for_idle_ms > 0)
        await this.waitForIdle(client, record, params.cursor, params.wait_for_idle_ms);
      const read = await readShellOutput(client, {
        shell_id: record.shell_id,
        cursor: params.cursor,
        max_bytes: maxBytes,
      });
      return {
        chunk: read,
        context: await shellContext(client, record.shell_id, read.cursor, redactor),
      };
    });
    const { output, bytes, has_more } = redactedShellText(
      chunk,
      context,
      redactor,
      (view) => shellText(view, params.max_chars, params.plain),
      (shown) => (params.plain ? plainText(shown.toString("utf8")) : shown.toString("utf8")),
    );
    await this.noteState(record, chunk);
    await this.workspaces.touch(record.workspace_id);
    return {
      workspace_id: record.workspace_id,
      shell_id: record.shell_id,
      output,
      cursor: chunk.cursor,
      next_cursor: chunk.cursor + bytes,
      truncated: chunk.truncated,
      has_more,
      state: chunk.state,
      exit_code: chunk.exit_code,
      signal: chunk.signal,
    };
  }

  async write(input: z.input<typeof WriteShellParams>) {
    const params = parseParams(WriteShellParams, input);
    const data = params.append_newline ? `${params.input}\n` : params.input;
    const [record, written] = await this.liveCall(params, "write", (client, shell_id) =>
      writeGuestShell(client, { shell_id, data }),
    );
    return {
      workspace_id: record.workspace_id,
      shell_id: record.shell_id,
      bytes_written: written.bytes_written,
    };
  }

  async signal(input: z.input<typeof SignalShellParams>) {
    const params = parseParams(SignalShellParams, input);
    const [record] = await this.liveCall(params, "signal", (client, shell_id) =>
      signalGuestShell(client, { shell_id, signal: params.signal_name }),
    );
    return {
      workspace_id: record.workspace_id,
      shell_id: record.shell_id,
      signal_name: params.signal_name,
    };
  }

  /** Ends the shell's programs and forgets it; a shell whose VM already stopped just goes. */
  async close(input: z.input<typeof ShellIdParams>) {
    const params = parseParams(ShellIdParams, input);
    const done = {
      workspace_id: params.workspace_id,
      shell_id: params.shell_id,
      closed: true as const,
    };
    // The workspace first: its id is checked there before it becomes part of a path.
    const workspace = await this.workspaces.active(params.workspace_id);
    const record = await readShellRecord(params.workspace_id, params.shell_id);
    if (workspace.state === "started") {
      await this.workspaces
        .withGuest(record.workspace_id, (client) => closeGuestShell(client, record.shell_id))
        .catch((error: unknown) => {
          if (!(error instanceof PyroError && error.code === "not_found")) throw error;
        });
      await this.workspaces.touch(record.workspace_id);
    }
    await removeShellRecord(record.workspace_id, record.shell_id);
    return done;
  }

  /**
   * The shell's record, once its workspace is known to be running. A record left from
   * before the VM stopped (an idle TTL stop) is removed: that shell ended with the VM.
   */
  private async liveRecord(params: { workspace_id: string; shell_id: string }) {
    // The workspace first: its id is checked there before it becomes part of a path.
    const workspace = await this.workspaces.active(params.workspace_id);
    const record = await readShellRecord(params.workspace_id, params.shell_id);
    if (workspace.state !== "started") {
      await removeShellRecord(record.workspace_id, record.shell_id);
      throw shellGone(record, `its workspace is ${workspace.state}`);
    }
    return record;
  }

  /** One guest call on a live shell, counted as the workspace's activity. */
  private async liveCall<T>(
    params: { workspace_id: string; shell_id: string },
    op: ShellOp,
    fn: (client: ChannelClient, shellId: string) => Promise<T>,
  ): Promise<[ShellRecord, T]> {
    const record = await this.liveRecord(params);
    const result = await this.guestCall(record, op, (client) => fn(client, record.shell_id));
    await this.workspaces.touch(record.workspace_id);
    return [record, result];
  }

  /** One guest call for a known shell; the guest not knowing it means it is gone. */
  private async guestCall<T>(
    record: ShellRecord,
    op: ShellOp,
    fn: (client: ChannelClient) => Promise<T>,
  ) {
    try {
      return await this.workspaces.withGuest(record.workspace_id, fn);
    } catch (error) {
      if (error instanceof PyroError && error.code === "not_found") {
        await removeShellRecord(record.workspace_id, record.shell_id);
        throw shellGone(record, "its workspace's VM was restarted");
      }
      throw explainGuestError(error, record, op);
    }
  }

  /**
   * Polls the output's length until it has not grown for `quietMs`, the shell has exited
   * and printed its last, or `quietMs + idleExtraWaitMs` passed. Each poll moves at most
   * one byte: only `available` matters here.
   */
  private async waitForIdle(
    client: ChannelClient,
    record: ShellRecord,
    cursor: number,
    quietMs: number,
  ): Promise<void> {
    const deadline = performance.now() + quietMs + this.idleExtraWaitMs;
    let available = -1;
    let grewAt = performance.now();
    for (;;) {
      const probe = await readShellOutput(client, {
        shell_id: record.shell_id,
        cursor: Math.max(available, cursor),
        max_bytes: 1,
      });
      const now = performance.now();
      const grew = probe.available !== available;
      if (grew) grewAt = now;
      if (!grew && probe.state === "exited") return;
      if (now - grewAt >= quietMs || now >= deadline) return;
      available = probe.available;
      await sleep(Math.min(this.idlePollMs, quietMs));
    }
  }

  /** Keeps the record's state in step with the guest's: an exited shell says how it ended. */
  private async noteState(record: ShellRecord, chunk: ShellReadResult): Promise<void> {
    if (record.state === chunk.state) return;
    await writeShellRecord({
      ...record,
      state: chunk.state,
      exit_code: chunk.exit_code,
      signal: chunk.signal,
    });
  }
}

/**
 * Opens the shell in the guest. A full table (16) may hold shells of callers killed
 * between the guest's open and their record: those have no record (records are written
 * before the open), nobody can name them, and they are closed to make room.
 */
async function openInGuest(
  client: ChannelClient,
  record: ShellRecord,
  env: Record<string, string>,
): Promise<void> {
  const { shell_id, cwd, cols, rows } = record;
  const secretEnv = Object.keys(env).length ? { env } : {};
  const open = () => openGuestShell(client, { shell_id, cwd, cols, rows, ...secretEnv });
  try {
    await open();
  } catch (error) {
    const full = error instanceof PyroError && error.details.guest_code === "busy";
    // When the guest cannot list its shells, its refusal stands as it is.
    const freed = full ? await closeUnnamedShells(client, record.workspace_id).catch(() => 0) : 0;
    if (freed === 0) throw explainGuestError(error, record, "open");
    await open().catch((again: unknown) => {
      throw explainGuestError(again, record, "open");
    });
  }
}

async function closeUnnamedShells(client: ChannelClient, workspaceId: string): Promise<number> {
  let closed = 0;
  for (const shell of await listGuestShells(client)) {
    if (await hasShellRecord(workspaceId, shell.shell_id)) continue;
    await closeGuestShell(client, shell.shell_id).catch(() => {});
    closed += 1;
  }
  return closed;
}

/**
 * The text of a chunk: at most `maxChars` whole characters. With `plain`, an escape
 * sequence cut off at the end waits for the next read (unless the shell is done), so its
 * tail never shows up as text. `has_more`: the guest has output past this chunk, or
 * `maxChars` stopped the text early; a held-back fragment alone does not count.
 */
export function shellText(
  chunk: Pick<ShellReadResult, "data" | "state" | "next_cursor" | "available">,
  maxChars: number,
  plain: boolean,
): { output: string; bytes: number; has_more: boolean } {
  const atEnd = chunk.state === "exited" && chunk.next_cursor === chunk.available;
  let cut = cutUtf8(chunk.data, maxChars, { atEnd });
  const has_more =
    chunk.next_cursor < chunk.available ||
    (cut.bytes < chunk.data.length && [...cut.text].length >= maxChars);
  if (!plain) return { output: cut.text, bytes: cut.bytes, has_more };
  const held = atEnd ? 0 : unfinishedEscapeLength(cut.text);
  if (held > 0) {
    const keep = [...cut.text.slice(0, cut.text.length - held)].length;
    if (keep === 0) return skipLeadingEscape(chunk);
    cut = cutUtf8(chunk.data, keep, { atEnd });
  }
  return { output: plainText(cut.text), bytes: cut.bytes, has_more };
}

/**
 * A plain chunk that starts with an escape sequence longer than `max_chars`: holding it
 * back would return no bytes, and a caller reading from `next_cursor` would never move
 * on. It shows as nothing, so it is consumed whole; one that does not end within the
 * bytes fetched while the guest has more is dropped as far as it goes. Only one that the
 * shell has not finished printing yet waits for the next read.
 */
function skipLeadingEscape(chunk: Pick<ShellReadResult, "data" | "next_cursor" | "available">): {
  output: string;
  bytes: number;
  has_more: boolean;
} {
  const all = cutUtf8(chunk.data, chunk.data.length);
  const skipped = all.bytes - Buffer.byteLength(all.text);
  const end = leadingEscapeLength(all.text);
  const more = chunk.next_cursor < chunk.available;
  if (end === -1 && !more) return { output: "", bytes: 0, has_more: false };
  const bytes = end === -1 ? all.bytes : skipped + Buffer.byteLength(all.text.slice(0, end));
  return { output: "", bytes, has_more: more || bytes < chunk.data.length };
}

function shellGone(record: ShellRecord, why: string): PyroError {
  return new PyroError(
    "not_found",
    `shell ${record.shell_id} has ended: ${why}; open a new one with \`pyro workspace shell open ${record.workspace_id}\` (MCP: shell_open)`,
    { details: { workspace_id: record.workspace_id, shell_id: record.shell_id } },
  );
}

type ShellOp = "open" | "read" | "write" | "signal";

/** The agent's answers that mean something to a shell user, said in shell terms. */
function explainGuestError(
  error: unknown,
  record: Pick<ShellRecord, "workspace_id" | "shell_id">,
  op: ShellOp,
) {
  if (!(error instanceof PyroError)) return error;
  const guestCode = error.details.guest_code;
  const where = { details: { ...error.details, shell_id: record.shell_id }, cause: error };
  // A write is refused as busy when its input queue is full; an open when the table is.
  if (guestCode === "busy" && op === "write") {
    return new PyroError(
      error.code,
      `shell ${record.shell_id} is not taking input (256 KiB already waiting); read its output or send it INT with shell_signal, then write again`,
      where,
    );
  }
  if (guestCode === "busy" && op === "open") {
    return new PyroError(
      error.code,
      `workspace ${record.workspace_id} already has the most shells it can hold (16, counting exited ones); close one with \`pyro workspace shell close\` (MCP: shell_close) first`,
      where,
    );
  }
  // The agent refuses input to a shell that exited or closed its terminal (protocol/README.md).
  if (guestCode === "invalid_argument" && /exited|closed its terminal/.test(error.message)) {
    const what = /exited/.test(error.message) ? "exited" : "closed its terminal";
    return new PyroError(
      "conflict",
      `shell ${record.shell_id} has ${what}; read its last output, then close it and open a new one`,
      where,
    );
  }
  if (guestCode === "unsupported") {
    return new PyroError(
      error.code,
      `the guest agent of workspace ${record.workspace_id} has no shells (it is older than this pyro); stop and start the workspace`,
      where,
    );
  }
  return error;
}
