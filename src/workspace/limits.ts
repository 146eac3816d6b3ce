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
