import { PyroError } from "../contract/errors.js";
import type { ChannelClient } from "./client.js";
import { AGENT_OPS, type OpRequest, type OpResult } from "./ops/index.js";

export type ShellReadResult = OpResult<typeof AGENT_OPS.shell_read> & { data: Buffer };

/**
 * One `shell_read`, with the bytes checked against the cursors the guest reports: the
 * host builds `next_cursor` for its callers from them, so a guest whose bytes and cursors
 * disagree (or that jumps backwards without cause) is a `guest_error`, not a wrong cursor.
 */
export async function readShellOutput(
  client: ChannelClient,
  request: OpRequest<typeof AGENT_OPS.shell_read>,
): Promise<ShellReadResult> {
  const { result, stdout } = await client.requestWithOutput(AGENT_OPS.shell_read, request);
  const span = result.next_cursor - result.cursor;
  if (stdout.length !== span) {
    throw malformed(
      `sent ${stdout.length} bytes for cursors ${result.cursor}..${result.next_cursor}`,
    );
  }
  // The reply starts at the asked cursor, later (the ring dropped older bytes: `truncated`),
  // or at the end when the asked cursor is beyond it.
  const expected =
    request.cursor > result.available
      ? result.cursor === result.available
      : result.truncated
        ? result.cursor > request.cursor
        : result.cursor === request.cursor;
  if (!expected) {
    throw malformed(`started at cursor ${result.cursor} for a read from ${request.cursor}`);
  }
  return { ...result, data: stdout };
}

function malformed(what: string): PyroError {
  return new PyroError("guest_error", `the guest sent a malformed shell_read reply (it ${what})`);
}
