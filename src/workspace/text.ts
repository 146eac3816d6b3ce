import { PyroError } from "../contract/errors.js";

/** The most text one workspace_file_write takes (1 MiB, CONTRACT.md "Rules"). */
export const MAX_WRITE_BYTES = 1 << 20;

// `fatal` makes invalid UTF-8 throw instead of becoming U+FFFD, which would silently
// corrupt the file on the next write; `ignoreBOM` keeps a BOM so a round trip is exact.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Decodes a file's bytes as UTF-8 text, refusing binary content. With `truncated`, the
 * bytes are a prefix cut at `max_bytes`, so an incomplete character at the end is dropped
 * rather than mistaken for binary.
 *
 * @throws PyroError `invalid_argument` for NUL bytes or invalid UTF-8.
 */
export function decodeUtf8Text(
  bytes: Buffer,
  path: string,
  options: { truncated?: boolean } = {},
): string {
  const whole = options.truncated ? bytes.subarray(0, completeUtf8Length(bytes)) : bytes;
  const text = tryDecodeUtf8(whole);
  if (text === undefined) {
    throw new PyroError(
      "invalid_argument",
      `${JSON.stringify(path)} is a binary file (not UTF-8 text); the file tools are text-only — use workspace export to copy it to the host`,
      { details: { path } },
    );
  }
  return text;
}

/**
 * Binary for pyro means "not something the text tools can round-trip": a NUL byte (git's
 * test) or bytes that are not valid UTF-8.
 */
export function isProbablyBinary(bytes: Buffer): boolean {
  return tryDecodeUtf8(bytes) === undefined;
}

/** The text, or `undefined` when the bytes are binary (see {@link isProbablyBinary}). */
export function tryDecodeUtf8(bytes: Buffer): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Refuses text over {@link MAX_WRITE_BYTES} before any I/O.
 *
 * @throws PyroError `invalid_argument` saying the size and the limit.
 */
export function checkWriteSize(text: string, path: string): void {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_WRITE_BYTES) {
    throw new PyroError(
      "invalid_argument",
      `text for ${JSON.stringify(path)} is ${bytes} bytes; workspace_file_write takes at most ${MAX_WRITE_BYTES} bytes (1 MiB) — split the file, or use workspace sync push for large files`,
      { details: { path, size_bytes: bytes, max_bytes: MAX_WRITE_BYTES } },
    );
  }
}

/**
 * Everything a text write must satisfy, checked before any I/O: the size limit, and no
 * NUL characters or unpaired surrogates (which UTF-8 cannot carry faithfully).
 */
export function checkWritableText(text: string, path: string): void {
  checkWriteSize(text, path);
  if (text.includes("\0") || LONE_SURROGATE.test(text)) {
    throw new PyroError(
      "invalid_argument",
      `text for ${JSON.stringify(path)} contains a NUL character or an unpaired surrogate; the file tools write UTF-8 text only — use workspace sync push for binary files`,
      { details: { path } },
    );
  }
}

/** Length of `bytes` without a trailing, incomplete UTF-8 sequence. */
function completeUtf8Length(bytes: Buffer): number {
  // A sequence is at most 4 bytes, so only the last 3 can start an incomplete one.
  for (let back = 1; back <= Math.min(3, bytes.length); back++) {
    const byte = bytes[bytes.length - back] as number;
    if ((byte & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead
    const needed = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return needed > back ? bytes.length - back : bytes.length;
  }
  return bytes.length;
}
