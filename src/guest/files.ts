import { PyroError } from "../contract/errors.js";
import { parseFromGuest, type ChannelClient } from "./client.js";
import { FrameType } from "./frame.js";
import {
  AGENT_OPS,
  FileEntrySchema,
  ManifestLineSchema,
  MAX_LISTING_BYTES,
  type WireManifestLine,
} from "./ops/index.js";

export type { WireFileEntry, WireManifestLine } from "./ops/index.js";

/** The agent's confined file operations (protocol/README.md, file ops). */

interface Target {
  /** The confining directory in the guest, e.g. /workspace. */
  root: string;
  /** Relative to root. */
  path: string;
}

/**
 * The lines an op streams on stdout as NDJSON (one entry per line), bounded on the host
 * side: at most MAX_LISTING_BYTES are kept and no more lines than the caller asked for.
 */
async function ndjsonLines<R>(
  request: (onData: (type: number, payload: Buffer) => void) => Promise<R>,
  maxEntries: number,
  what: string,
): Promise<{ lines: string[]; result: R }> {
  const chunks: Buffer[] = [];
  let size = 0;
  const result = await request((type, payload) => {
    if (type !== FrameType.stdout) return;
    size += payload.length;
    if (size <= MAX_LISTING_BYTES) chunks.push(payload);
  });
  if (size > MAX_LISTING_BYTES)
    throw new PyroError("guest_error", `the guest sent an oversized ${what}`);
  const lines = Buffer.concat(chunks).toString("utf8").split("\n").filter(Boolean);
  if (lines.length > maxEntries)
    throw new PyroError("guest_error", `the guest's ${what} has more entries than asked`);
  return { lines, result };
}

/** Streams the listing as NDJSON (one entry per line), bounded on the host side. */
export async function listFiles(
  client: ChannelClient,
  target: Target & { recursive: boolean; max_entries: number },
) {
  const { lines, result } = await ndjsonLines(
    (onData) => client.request(AGENT_OPS.file_list, target, { onData }),
    target.max_entries,
    "file listing",
  );
  const entries = lines.map((line) => parseFromGuest(FileEntrySchema, safeJson(line), "file_list"));
  return { entries, truncated: result.truncated };
}

/**
 * The agent's manifest of `path` (recursive: modes, sizes, SHA-256 of files), each line
 * parsed with its schema. The listing as a whole is checked by `workspace/manifest.ts`.
 */
export async function readManifest(
  client: ChannelClient,
  target: Target & { max_entries: number; max_bytes: number },
): Promise<{ lines: WireManifestLine[]; truncated: boolean; hashed_bytes: number }> {
  const { lines, result } = await ndjsonLines(
    (onData) => client.request(AGENT_OPS.file_manifest, target, { onData }),
    target.max_entries,
    "file manifest",
  );
  if (result.hashed_bytes > target.max_bytes)
    throw new PyroError("guest_error", "the guest hashed more bytes than asked");
  const parsed = lines.map((line) =>
    parseFromGuest(ManifestLineSchema, safeJson(line), "file_manifest"),
  );
  return { lines: parsed, truncated: result.truncated, hashed_bytes: result.hashed_bytes };
}

export async function readFileBytes(client: ChannelClient, target: Target & { max_bytes: number }) {
  const chunks: Buffer[] = [];
  let size = 0;
  const onData = (type: number, payload: Buffer) => {
    if (type !== FrameType.stdout) return;
    const room = target.max_bytes - size;
    if (room > 0) chunks.push(payload.subarray(0, room));
    size += payload.length;
  };
  const result = await client.request(AGENT_OPS.file_read, target, { onData });
  return {
    content: Buffer.concat(chunks),
    size_bytes: result.size_bytes,
    truncated: result.truncated || size > target.max_bytes,
  };
}

export async function writeFileBytes(client: ChannelClient, target: Target & { content: Buffer }) {
  const { content, ...where } = target;
  return client.request(
    AGENT_OPS.file_write,
    { ...where, size_bytes: content.length, create_parents: true },
    { stdin: content },
  );
}

export async function deletePath(client: ChannelClient, target: Target & { recursive: boolean }) {
  await client.request(AGENT_OPS.file_delete, target);
}

export async function makeDirectory(client: ChannelClient, target: Target) {
  await client.request(AGENT_OPS.mkdir, target);
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}
