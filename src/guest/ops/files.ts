import { z } from "zod";
import { capFromField, count, defineOp, guestPath, guestText, resultFrame } from "./op.js";
import { DEFAULT_MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES_LIMIT } from "./exec.js";

/** The agent's confined file operations (protocol/README.md "Workspace files"). */

/** A file listing streams whole, however large; this bounds it (64 MiB). */
export const MAX_LISTING_BYTES = 64 << 20;
export const MAX_FILE_BYTES = 16 << 20;

const target = { root: guestPath, path: z.string().min(1).max(4096) };

/** One NDJSON line of a `file_list` stream. */
export const FileEntrySchema = z.object({
  path: guestText(),
  artifact_type: z.enum(["file", "directory", "symlink"]),
  size_bytes: count,
  link_target: guestText().nullable(),
});
export type WireFileEntry = z.infer<typeof FileEntrySchema>;

export const fileList = defineOp(
  "file_list",
  z.strictObject({
    ...target,
    recursive: z.boolean().optional(),
    max_entries: z.number().int().min(1).max(100_000).optional(),
  }),
  resultFrame({ path: guestText(), count, truncated: z.boolean() }),
  { stdoutCap: () => MAX_LISTING_BYTES, stderrCap: () => 0 },
);

/** Bytes of file content `file_manifest` hashes by default, and at most (agent/src/file_list.h). */
export const MANIFEST_DEFAULT_BYTES = 256 << 20;
export const MANIFEST_MAX_BYTES = 2 * 1024 ** 3;
export const MANIFEST_MAX_ENTRIES = 100_000;

/**
 * One NDJSON line of a `file_manifest` stream: a `file_list` line plus the permission bits
 * and, for files only, the SHA-256 of the content. Only the fields' shapes are checked
 * here; `workspace/manifest.ts` checks the listing as a whole (paths, duplicates, parents).
 */
export const ManifestLineSchema = z.strictObject({
  path: guestText(),
  artifact_type: z.enum(["file", "directory", "symlink"]),
  size_bytes: count,
  mode: z.number().int().min(0).max(0o7777),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable(),
  link_target: guestText().nullable(),
});
export type WireManifestLine = z.infer<typeof ManifestLineSchema>;

/** A recursive listing of `path` with modes and content hashes (protocol/README.md). */
export const fileManifest = defineOp(
  "file_manifest",
  z.strictObject({
    ...target,
    max_entries: z.number().int().min(1).max(MANIFEST_MAX_ENTRIES).optional(),
    max_bytes: z.number().int().min(0).max(MANIFEST_MAX_BYTES).optional(),
  }),
  resultFrame({ path: guestText(), count, truncated: z.boolean(), hashed_bytes: count }),
  { stdoutCap: () => MAX_LISTING_BYTES, stderrCap: () => 0 },
);

export const fileRead = defineOp(
  "file_read",
  z.strictObject({ ...target, max_bytes: z.number().int().min(1).max(MAX_FILE_BYTES).optional() }),
  resultFrame({ path: guestText(), size_bytes: count, truncated: z.boolean() }),
  {
    stdoutCap: capFromField("max_bytes", DEFAULT_MAX_OUTPUT_BYTES, 1, MAX_OUTPUT_BYTES_LIMIT),
    stderrCap: () => 0,
  },
);

/** The content follows as `stdin` frames and `stdin_eof` (`RequestOptions.stdin`). */
export const fileWrite = defineOp(
  "file_write",
  z.strictObject({
    ...target,
    size_bytes: z.number().int().min(0).max(MAX_FILE_BYTES),
    mode: z.number().int().min(0).max(0o7777).optional(),
    create_parents: z.boolean().optional(),
  }),
  resultFrame({ path: guestText(), bytes_written: count }),
);

export const fileDelete = defineOp(
  "file_delete",
  z.strictObject({ ...target, recursive: z.boolean().optional() }),
  resultFrame({ path: guestText(), deleted: z.literal(true) }),
);

export const mkdir = defineOp("mkdir", z.strictObject(target), resultFrame({ path: guestText() }));
