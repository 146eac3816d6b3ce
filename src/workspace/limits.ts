import { PyroError, type ErrorCode } from "../contract/errors.js";

/**
 * Who produced some content pyro is about to unpack or read: the guest (untrusted, its
 * faults are `guest_error`) or the user (a seed they gave, faults are `invalid_argument`).
 */
export type ContentOrigin = "guest" | "user";

/** Bounds on an archive, counted while it streams so a hostile one is stopped early. */
export interface ArchiveLimits {
  /** Most entries (files, directories, symlinks). */
  maxEntries: number;
  /** Most bytes of file content, as declared by the entries' headers. */
  maxTotalBytes: number;
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = {
  maxEntries: 100_000,
  maxTotalBytes: 2 * 1024 ** 3,
};

/**
 * Tar bytes allowed per entry beyond its content: its header, padding to a block and an
 * extended header for a long path or link target.
 */
const TAR_BYTES_PER_ENTRY = 4096;
/** Room for the end-of-archive blocks and a couple of extended headers at their size limit. */
const TAR_SLACK_BYTES = 256 * 1024;

/**
 * The most tar bytes (counted after inflating gzip) an archive within `limits` can take.
 * File content is bounded by the headers' sizes, but extended headers and padding are
 * not: without this, a small gzip of padding or of pax headers could expand for ever.
 */
export function maxTarBytes(limits: ArchiveLimits): number {
  return limits.maxTotalBytes + limits.maxEntries * TAR_BYTES_PER_ENTRY + TAR_SLACK_BYTES;
}

/** A tree is held in memory (twice, for a diff), so its default byte bound is lower. */
export const DEFAULT_TREE_LIMITS: ArchiveLimits = {
  maxEntries: 100_000,
  maxTotalBytes: 256 * 1024 ** 2,
};

export function errorCodeFor(origin: ContentOrigin): ErrorCode {
  return origin === "guest" ? "guest_error" : "invalid_argument";
}

/** An error about content from `origin`, with the code that origin calls for. */
export function contentError(
  origin: ContentOrigin,
  message: string,
  details: Record<string, unknown> = {},
): PyroError {
  return new PyroError(errorCodeFor(origin), message, { details });
}
