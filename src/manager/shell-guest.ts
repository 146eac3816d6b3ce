import { PyroError } from "../contract/errors.js";
import type { ChannelClient } from "../guest/client.js";
import { AGENT_OPS, SHELL_RING_BYTES, type OpResult } from "../guest/ops/index.js";

/**
 * The agent's shell ops (protocol/README.md, Shells) as the shell manager uses them. The
 * replies are parsed by the ops' schemas; on top of that, a read's cursors must agree with
 * the bytes that actually came, or the read is a guest error: the guest is untrusted, and a
 * cursor that skips or repeats output would silently corrupt what a caller reads.
 */

/** The agent's largest `max_bytes` of one `shell_read` (its whole ring). */
export const MAX_GUEST_READ_BYTES = SHELL_RING_BYTES;

export interface GuestShellOpen {
  shell_id: string;
  /** Absolute guest path. */
  cwd: string;
  cols: number;
  rows: number;
}

export function openGuestShell(client: ChannelClient, request: GuestShellOpen) {
  return client.request(AGENT_OPS.shell_open, request);
}

export type GuestShellChunk = OpResult<typeof AGENT_OPS.shell_read> & { bytes: Buffer };

/** Bytes `[cursor, next_cursor)` of the shell's output ring, checked against the reply. */
export async function readGuestShell(
  client: ChannelClient,
  request: { shell_id: string; cursor: number; max_bytes: number },
): Promise<GuestShellChunk> {
  const read = await client.requestWithOutput(AGENT_OPS.shell_read, request);
  const chunk = { ...read.result, bytes: read.stdout };
  if (read.stdout_dropped || !consistentRead(request.cursor, chunk)) {
    throw new PyroError(
      "guest_error",
      `the guest's shell_read reply does not match its output (cursor ${chunk.cursor}, next ${chunk.next_cursor}, ${chunk.bytes.length} bytes); read again from cursor ${request.cursor}`,
    );
  }
  return chunk;
}

/**
 * The protocol's rule: the read starts at the asked cursor (or at the end of the output
 * when that is past it), later only when older output was dropped (`truncated`), and
 * covers exactly the bytes sent.
 */
function consistentRead(asked: number, chunk: GuestShellChunk): boolean {
  const start = chunk.truncated
    ? chunk.cursor > asked
    : chunk.cursor === Math.min(asked, chunk.available);
  return start && chunk.next_cursor === chunk.cursor + chunk.bytes.length;
}

export async function writeGuestShell(
  client: ChannelClient,
  request: { shell_id: string; data: string },
) {
  const reply = await client.request(AGENT_OPS.shell_write, request);
  if (reply.bytes_written > Buffer.byteLength(request.data, "utf8"))
    throw new PyroError("guest_error", "the guest reported writing more bytes than it was sent");
  return reply;
}

export async function signalGuestShell(
  client: ChannelClient,
  request: { shell_id: string; signal: "HUP" | "INT" | "TERM" | "KILL" },
): Promise<void> {
  await client.request(AGENT_OPS.shell_signal, request);
}

export async function closeGuestShell(client: ChannelClient, shellId: string): Promise<void> {
  await client.request(AGENT_OPS.shell_close, { shell_id: shellId });
}
