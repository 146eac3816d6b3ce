import { PyroError } from "../contract/errors.js";
import type { ChannelClient } from "../guest/client.js";
import { AGENT_OPS, SHELL_RING_BYTES } from "../guest/ops/index.js";

/**
 * The agent's shell ops (protocol/README.md, Shells) as the shell manager uses them. The
 * replies are parsed by the ops' schemas; reads go through guest/shells.ts
 * `readShellOutput`, which checks a read's cursors against its bytes.
 */

/** The agent's largest `max_bytes` of one `shell_read` (its whole ring). */
export const MAX_GUEST_READ_BYTES = SHELL_RING_BYTES;

export interface GuestShellOpen {
  shell_id: string;
  /** Absolute guest path. */
  cwd: string;
  cols: number;
  rows: number;
  /** Secrets mapped into the shell's environment (`secret_env`). */
  env?: Record<string, string>;
}

export function openGuestShell(client: ChannelClient, request: GuestShellOpen) {
  return client.request(AGENT_OPS.shell_open, request);
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

export async function listGuestShells(client: ChannelClient) {
  return (await client.request(AGENT_OPS.shell_list, {})).shells;
}
