import type { ChannelClient } from "../guest/client.js";
import { readShellOutput, type ShellReadResult } from "../guest/shells.js";
import type { Redactor } from "./redact.js";

/**
 * Shell output is read by cursor, by callers that may be different processes each time, so
 * no redaction stream survives between reads. Instead each read looks back at the bytes
 * before its cursor (a match that began there) and stops before a tail that may still grow
 * into a secret: the caller's next read, from `next_cursor`, starts with that tail.
 */

type Chunk = Pick<ShellReadResult, "cursor" | "data" | "state" | "next_cursor" | "available">;
type ShellText = { output: string; bytes: number; has_more: boolean };

/** The bytes just before `cursor` that a redaction window needs (fewer if the ring lost them). */
export async function shellContext(
  client: ChannelClient,
  shellId: string,
  cursor: number,
  redactor: Redactor,
): Promise<Buffer> {
  if (redactor.empty || cursor === 0) return Buffer.alloc(0);
  const from = Math.max(0, cursor - redactor.contextBytes);
  const read = await readShellOutput(client, {
    shell_id: shellId,
    cursor: from,
    max_bytes: cursor - from,
  });
  return read.cursor <= cursor ? read.data.subarray(0, cursor - read.cursor) : Buffer.alloc(0);
}

/**
 * `text(chunk)` (the shell manager's cut into characters, plain or not) with secret values
 * redacted, consuming no more bytes than are safe to show. `has_more` stays what the whole
 * chunk says: a held-back tail alone does not count (like a held escape sequence).
 */
export function redactedShellText(
  chunk: Chunk,
  context: Buffer,
  redactor: Redactor,
  text: (chunk: Chunk) => ShellText,
  toText: (bytes: Buffer) => string,
): ShellText {
  const whole = text(chunk);
  if (redactor.empty) return whole;
  let view = chunk;
  let shown = whole;
  for (;;) {
    const atEnd =
      chunk.state === "exited" &&
      chunk.next_cursor === chunk.available &&
      shown.bytes === chunk.data.length;
    const window = redactor.window(context, view.data.subarray(0, shown.bytes), atEnd);
    if (window.consumed === shown.bytes) {
      return { output: toText(window.output), bytes: shown.bytes, has_more: whole.has_more };
    }
    view = {
      ...view,
      data: view.data.subarray(0, window.consumed),
      next_cursor: view.cursor + window.consumed,
    };
    shown = text(view);
  }
}
