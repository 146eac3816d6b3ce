import { z } from "zod";
import { PyroError } from "../contract/errors.js";
import { parseFromGuest, type ChannelClient } from "../guest/client.js";
import { FrameType } from "../guest/frame.js";

/**
 * The agent's shell ops (protocol/README.md, Shells) as seen from the host. Everything the
 * guest answers is untrusted: replies are parsed with bounds, and a read's cursors must
 * agree with the bytes that actually came, or the read is a guest error.
 */

/** The agent's largest `max_bytes` of one `shell_read`. */
export const MAX_GUEST_READ_BYTES = 1 << 20;

const cursor = z.number().int().min(0);
const exitFields = {
  state: z.enum(["running", "exited"]),
  exit_code: z.number().int().min(0).max(255).nullable(),
  signal: z
    .string()
    .max(16)
    .regex(/^[A-Z0-9]+$/)
    .nullable(),
};

const OpenReply = z.object({ type: z.literal("result"), pid: z.number().int().positive() });
const ReadReply = z.object({
  type: z.literal("result"),
  cursor,
  next_cursor: cursor,
  available: cursor,
  truncated: z.boolean(),
  ...exitFields,
});
const WriteReply = z.object({
  type: z.literal("result"),
  bytes_written: z.number().int().min(0),
});
const DoneReply = z.object({ type: z.literal("result") });

export interface GuestShellOpen {
  shell_id: string;
  /** Absolute guest path. */
  cwd: string;
  cols: number;
  rows: number;
}

export async function openGuestShell(client: ChannelClient, request: GuestShellOpen) {
  return parseFromGuest(OpenReply, await client.request({ op: "shell_open", ...request }));
}

export interface GuestShellChunk extends z.output<typeof ReadReply> {
  bytes: Buffer;
}

/** Bytes `[cursor, next_cursor)` of the shell's output ring, checked against the reply. */
export async function readGuestShell(
  client: ChannelClient,
  request: { shell_id: string; cursor: number; max_bytes: number },
): Promise<GuestShellChunk> {
  const chunks: Buffer[] = [];
  let size = 0;
  const onData = (type: number, payload: Buffer) => {
    if (type !== FrameType.stdout) return;
    size += payload.length;
    if (size <= request.max_bytes) chunks.push(payload);
  };
  const reply = parseFromGuest(
    ReadReply,
    await client.request({ op: "shell_read", ...request }, { onData }),
  );
  const chunk = { ...reply, bytes: Buffer.concat(chunks) };
  if (size > request.max_bytes || !consistentRead(request.cursor, size, chunk)) {
    throw new PyroError(
      "guest_error",
      `the guest's shell_read reply does not match its output (cursor ${reply.cursor}, next ${reply.next_cursor}, ${size} bytes); read again from cursor ${request.cursor}`,
    );
  }
  return chunk;
}

/**
 * The protocol's rule: the read starts at the asked cursor (or at the end of the output
 * when that is past it), later only when older output was dropped (`truncated`), and
 * covers exactly the bytes sent.
 */
function consistentRead(asked: number, size: number, reply: z.output<typeof ReadReply>): boolean {
  const start = reply.truncated
    ? reply.cursor > asked
    : reply.cursor === Math.min(asked, reply.available);
  return start && reply.next_cursor === reply.cursor + size && reply.next_cursor <= reply.available;
}

export async function writeGuestShell(
  client: ChannelClient,
  request: { shell_id: string; data: string },
) {
  const reply = parseFromGuest(WriteReply, await client.request({ op: "shell_write", ...request }));
  if (reply.bytes_written > Buffer.byteLength(request.data, "utf8"))
    throw new PyroError("guest_error", "the guest reported writing more bytes than it was sent");
  return reply;
}

export async function signalGuestShell(
  client: ChannelClient,
  request: { shell_id: string; signal: string },
): Promise<void> {
  parseFromGuest(DoneReply, await client.request({ op: "shell_signal", ...request }));
}

export async function closeGuestShell(client: ChannelClient, shellId: string): Promise<void> {
  parseFromGuest(DoneReply, await client.request({ op: "shell_close", shell_id: shellId }));
}
