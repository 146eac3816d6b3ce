import { open, readdir } from "node:fs/promises";
import type { Readable } from "node:stream";
import { Parser, type ReadEntry } from "tar";
import { TarFeed } from "./archive-feed.js";
import { DirectorySink, TarFileSink, type EntrySink, type Kind } from "./archive-sinks.js";
import { asPyroError, PyroError } from "../contract/errors.js";
import { isErrno } from "../util/fs.js";
import {
  contentError,
  DEFAULT_ARCHIVE_LIMITS,
  maxTarBytes,
  type ArchiveLimits,
  type ContentOrigin,
} from "./limits.js";

export { DEFAULT_ARCHIVE_LIMITS, type ArchiveLimits, type ContentOrigin };
// Seeds and packing live in pack.ts; the workspace manager takes all archive work from here.
export { detectSeed, packDirectory, packTree } from "./pack.js";

export interface ExtractOptions {
  /**
   * `"auto"` takes plain and gzip tars; `true`/`false` insist on one. A guest's archive is
   * never compressed: an inflated stream is a bomb the guest gets to size.
   * @default "auto" for origin "user", false for origin "guest"
   */
  gzip?: "auto" | boolean;
  /** Who made the archive: decides the error code (`guest_error` / `invalid_argument`). @default "guest" */
  origin?: ContentOrigin;
}

/** Linux PATH_MAX and NAME_MAX. */
const MAX_PATH_BYTES = 4096;
const MAX_NAME_BYTES = 255;
/** A pax header holds a path, a link target and a few fields: 64 KiB is plenty. */
const MAX_META_BYTES = 64 * 1024;

const KIND_OF_TYPE: Partial<Record<ReadEntry["type"], Kind>> = {
  File: "file",
  OldFile: "file",
  ContiguousFile: "file",
  Directory: "directory",
  SymbolicLink: "symlink",
};

const TYPE_NAMES: Partial<Record<ReadEntry["type"], string>> = {
  Link: "a hard link",
  CharacterDevice: "a character device",
  BlockDevice: "a block device",
  FIFO: "a FIFO",
};

/**
 * Extracts an untrusted tar (plain or gzip) into `dest`, an existing empty directory.
 *
 * Accepted: files, directories and symlinks. Symlinks are created as they are (a link is
 * inert until followed) but nothing is ever written through one. Rejected, naming the
 * entry: absolute paths, `..` components, paths over 4096 bytes, an entry under a
 * symlink or a file of the archive, hard links, devices, FIFOs and other types, more
 * than `limits.maxEntries` entries, more than `limits.maxTotalBytes` of file content
 * (counted from the headers while streaming, so a hostile archive stops early).
 * Set-id and sticky bits and group/other write bits are dropped (as a umask of 022 would);
 * the owner always gets rw (and x on directories) so the tree can be read and removed.
 * Gzip is inflated here (never by node-tar) and the inflated bytes are bounded too
 * ({@link maxTarBytes}); reading stops at the end-of-archive blocks, whatever follows.
 *
 * On any rejection everything written under `dest` is removed before this throws.
 *
 * @throws PyroError `guest_error` (origin "guest") or `invalid_argument` (origin "user").
 */
export async function extractArchive(
  source: NodeJS.ReadableStream | string,
  dest: string,
  limits: ArchiveLimits,
  options: ExtractOptions = {},
): Promise<{ entries: number; bytes: number }> {
  await checkEmptyDirectory(dest);
  const input = await openSource(source, options.origin ?? "guest");
  return checkInto(new DirectorySink(dest), input, limits, options, "extracting an archive");
}

/**
 * Checks an untrusted tar exactly as {@link extractArchive} does, but writes it to the
 * file `dest` as a normalised plain tar instead of unpacking it: the same entries with
 * owners 0, extraction's modes, paths without `./`. Nothing is held in memory beyond
 * one chunk; the file appears (by rename) only once the whole archive passed, and a
 * partial one is deleted.
 *
 * @throws PyroError as extractArchive.
 */
export async function copyArchive(
  source: NodeJS.ReadableStream | string,
  dest: string,
  limits: ArchiveLimits,
  options: ExtractOptions = {},
): Promise<{ entries: number; bytes: number }> {
  const input = await openSource(source, options.origin ?? "guest");
  return checkInto(await TarFileSink.create(dest), input, limits, options, "copying an archive");
}

/** Runs the checks of one archive into `sink`; on any rejection the sink's output goes. */
async function checkInto(
  sink: EntrySink,
  input: NodeJS.ReadableStream,
  limits: ArchiveLimits,
  options: ExtractOptions,
  doing: string,
): Promise<{ entries: number; bytes: number }> {
  const origin = options.origin ?? "guest";
  const gzip = options.gzip ?? (origin === "user" ? "auto" : false);
  try {
    return await new Extraction(sink, limits, origin).run(input, gzip);
  } catch (error) {
    await sink.discard();
    throw asPyroError(error, doing);
  }
}

/** One extraction's state: what the archive has declared so far, and the write queue. */
class Extraction {
  private entries = 0;
  private metaEntries = 0;
  private bytes = 0;
  /** What each path is, by the archive's own entries (parents included). */
  private readonly kinds = new Map<string, Kind>();
  /** Entries are written one after another, in archive order. */
  private writes: Promise<void> = Promise.resolve();
  private failure: PyroError | undefined;
  private latest: ReadEntry | undefined;
  private sawEndOfArchive = false;
  // zstd: false, so node-tar never inflates on its own (TarFeed refuses a gzip magic).
  private readonly parser = new Parser({
    strict: true,
    maxMetaEntrySize: MAX_META_BYTES,
    zstd: false,
  });
  private stopFeeding = () => {};
  private settle = {
    resolve: (_result: { entries: number; bytes: number }) => {},
    reject: (_error: PyroError) => {},
  };

  constructor(
    private readonly sink: EntrySink,
    private readonly limits: ArchiveLimits,
    private readonly origin: ContentOrigin,
  ) {}

  run(source: NodeJS.ReadableStream, gzip: "auto" | boolean) {
    return new Promise<{ entries: number; bytes: number }>((resolve, reject) => {
      this.settle = { resolve, reject };
      const parser = this.parser;
      parser.on("entry", (entry: ReadEntry) => this.accept(entry));
      parser.on("ignoredEntry", (entry: ReadEntry) => this.stop(this.unsupportedEntry(entry)));
      parser.on("meta", () => this.countMeta());
      parser.on("error", (error: Error) => this.parserError(error));
      parser.on("eof", () => this.endOfArchive());
      parser.on("end", () => void this.finish());
      source.on("error", (error: Error) => this.stop(asPyroError(error, "reading the archive")));
      let sourceEnded = false;
      source.on("end", () => (sourceEnded = true));
      if ((source as Partial<Readable>).destroyed) {
        this.stop(this.reject("its stream was closed before extraction began"));
      }
      // A stream destroyed by its producer only closes: without this the parser would wait forever.
      source.on("close", () => {
        if (!sourceEnded && !this.sawEndOfArchive) {
          this.stop(this.reject("its stream closed before the archive ended"));
        }
      });
      const feed = new TarFeed(source, parser, {
        gzip,
        maxTarBytes: maxTarBytes(this.limits),
        onRefused: (problem) => this.stop(this.reject(problem)),
      });
      this.stopFeeding = () => feed.stop();
    });
  }

  /** Aborts with the first error, once every write in flight has settled. */
  private stop(error: PyroError): void {
    if (this.failure) return;
    this.failure = error;
    this.stopFeeding();
    this.parser.abort(error);
    // Destroying ends a write waiting for data that will never come; the parser may
    // still push into the entry, which a destroyed stream reports as an error: ignore it.
    this.latest?.on("error", () => {}).destroy();
    void this.writes.finally(() => this.settle.reject(error));
  }

  private parserError(error: Error): void {
    // node-tar calls an archive of nothing but end blocks "unrecognized"; it is empty.
    const empty = this.sawEndOfArchive && this.entries === 0;
    if (empty && /Unrecognized archive/.test(error.message)) return;
    this.stop(this.reject(`it is not a valid tar archive (${error.message})`));
  }

  /** Past the end-of-archive blocks the parser would only buffer what follows: stop reading and inflating. */
  private endOfArchive(): void {
    this.sawEndOfArchive = true;
    this.stopFeeding();
    setImmediate(() => {
      try {
        this.parser.end();
      } catch (error) {
        // node-tar throws on some malformed input: a refusal, not an uncaught exception.
        this.stop(this.reject(`it is not a valid tar archive (${(error as Error).message})`));
      }
    });
  }

  private async finish(): Promise<void> {
    try {
      await this.writes;
      if (!this.failure) await this.sink.finish();
      if (!this.failure) this.settle.resolve({ entries: this.entries, bytes: this.bytes });
    } catch (error) {
      this.stop(asPyroError(error, "extracting an archive"));
    }
  }

  private accept(entry: ReadEntry): void {
    if (this.failure) return;
    this.latest = entry;
    let plan: { path: string; kind: Kind; replaces: boolean } | undefined;
    try {
      plan = this.check(entry);
    } catch (error) {
      this.stop(error as PyroError);
      return;
    }
    this.writes = this.writes
      .then(async () => {
        if (plan && !this.failure) await this.sink.write(entry, plan);
        else entry.resume();
      })
      .then(
        () => undefined,
        (error: unknown) =>
          this.stop(asPyroError(error, `extracting entry ${JSON.stringify(entry.path)}`)),
      );
  }

  /** Every check that needs only the headers seen so far; runs before any byte is written. */
  private check(entry: ReadEntry) {
    this.entries += 1;
    if (this.entries > this.limits.maxEntries) {
      throw this.reject(`it has more than ${this.limits.maxEntries} entries (the limit)`);
    }
    const kind = KIND_OF_TYPE[entry.type];
    if (kind === undefined) throw this.unsupportedEntry(entry);
    const path = this.entryPath(entry.path);
    if (kind === "file") this.countBytes(entry);
    if (kind === "symlink") this.checkLinkTarget(entry);
    if (path === "") {
      // "./" is the destination itself: fine as a directory, meaningless as anything else.
      if (kind !== "directory") throw this.rejectEntry(entry, "has an empty path");
      return undefined;
    }
    this.checkParents(entry, path);
    const earlier = this.kinds.get(path);
    if (earlier !== undefined && (earlier === "directory") !== (kind === "directory")) {
      throw this.rejectEntry(entry, `is a ${kind}, but an earlier entry made it a ${earlier}`);
    }
    this.kinds.set(path, kind);
    return { path, kind, replaces: earlier !== undefined && kind !== "directory" };
  }

  private entryPath(raw: string): string {
    if (raw.startsWith("/")) throw this.rejectEntry(raw, "has an absolute path");
    if (Buffer.byteLength(raw) > MAX_PATH_BYTES) {
      throw this.rejectEntry(raw.slice(0, 80), `has a path longer than ${MAX_PATH_BYTES} bytes`);
    }
    const parts = raw.split("/").filter((part) => part !== "" && part !== ".");
    if (parts.includes("..")) throw this.rejectEntry(raw, 'has a ".." component');
    if (parts.some((part) => Buffer.byteLength(part) > MAX_NAME_BYTES)) {
      throw this.rejectEntry(raw, `has a name longer than ${MAX_NAME_BYTES} bytes`);
    }
    return parts.join("/");
  }

  private countBytes(entry: ReadEntry): void {
    this.bytes += entry.size;
    if (this.bytes > this.limits.maxTotalBytes) {
      throw this.rejectEntry(
        entry,
        `(${entry.size} bytes) takes the archive's content over ${this.limits.maxTotalBytes} bytes (the limit)`,
      );
    }
  }

  private checkLinkTarget(entry: ReadEntry): void {
    if (Buffer.byteLength(entry.linkpath ?? "") > MAX_PATH_BYTES) {
      throw this.rejectEntry(
        entry,
        `is a symlink whose target is longer than ${MAX_PATH_BYTES} bytes`,
      );
    }
  }

  /** The symlink-then-file attack: `link -> /etc`, then `link/passwd`. */
  private checkParents(entry: ReadEntry, path: string): void {
    const parts = path.split("/");
    for (let depth = 1; depth < parts.length; depth++) {
      const parent = parts.slice(0, depth).join("/");
      const kind = this.kinds.get(parent);
      if (kind === "symlink") {
        throw this.rejectEntry(
          entry,
          `would be written through the symlink ${JSON.stringify(parent)}`,
        );
      }
      if (kind === "file") {
        throw this.rejectEntry(entry, `is inside ${JSON.stringify(parent)}, which is a file`);
      }
      this.kinds.set(parent, "directory");
    }
  }

  private countMeta(): void {
    // Pax and long-name headers are not entries, but an endless run of them is still work.
    this.metaEntries += 1;
    if (this.metaEntries > this.limits.maxEntries) {
      this.stop(this.reject(`it has more than ${this.limits.maxEntries} extended headers`));
    }
  }

  private unsupportedEntry(entry: ReadEntry): PyroError {
    if (entry.meta) {
      return this.rejectEntry(entry, `has extended headers over ${MAX_META_BYTES} bytes`);
    }
    const link = entry.type === "Link" ? ` (to ${JSON.stringify(entry.linkpath)})` : "";
    const what = TYPE_NAMES[entry.type] ?? `of type ${entry.type}`;
    return this.rejectEntry(
      entry,
      `is ${what}${link}; only files, directories and symlinks are accepted`,
    );
  }

  private rejectEntry(entry: ReadEntry | string, problem: string): PyroError {
    const name = typeof entry === "string" ? entry : entry.path;
    return this.reject(`entry ${JSON.stringify(name)} ${problem}`, { entry: name });
  }

  private reject(problem: string, details: Record<string, unknown> = {}): PyroError {
    const what = this.origin === "guest" ? "the archive from the guest" : "the archive";
    return contentError(
      this.origin,
      `${what} was rejected: ${problem}; nothing was extracted`,
      details,
    );
  }
}

async function openSource(source: NodeJS.ReadableStream | string, origin: ContentOrigin) {
  if (typeof source !== "string") return source;
  try {
    const handle = await open(source, "r");
    return handle.createReadStream();
  } catch (error) {
    if (isErrno(error, "ENOENT")) throw contentError(origin, `archive ${source} does not exist`);
    throw asPyroError(error, `opening archive ${source}`);
  }
}

async function checkEmptyDirectory(dest: string): Promise<void> {
  const names = await readdir(dest).catch((error: unknown) => {
    throw asPyroError(error, `extraction destination ${dest} is not a readable directory`);
  });
  if (names.length > 0) {
    throw new PyroError("internal", `extraction destination ${dest} is not empty`);
  }
}
