/**
 * The byte side of extracting an untrusted tar: decides the compression, inflates gzip
 * itself when it is allowed, counts the tar bytes the parser sees, and stops every stream
 * for good when told to (at end-of-archive or on a refusal).
 *
 * node-tar's parser would inflate gzip (and zstd) on its own, but it keeps buffering what
 * its inflater drains after the end-of-archive, concatenating the whole remainder again
 * for each 16 KiB chunk: 200 KB of gzip after the end stalled the event loop for minutes.
 * Here the parser only ever sees plain tar bytes, and nothing is inflated past the end.
 */
import type { Readable } from "node:stream";
import { createGunzip, type Gunzip } from "node:zlib";
import type { Parser } from "tar";

export interface FeedOptions {
  /** `"auto"` inflates gzip when it sees its magic; `true`/`false` insist on one. */
  gzip: "auto" | boolean;
  /** Most tar bytes (after inflating) the parser may be given. */
  maxTarBytes: number;
  /** Called (once) with why the bytes are refused; the caller then calls `stop()`. */
  onRefused: (problem: string) => void;
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

export class TarFeed {
  private stopped = false;
  private refused = false;
  private inflater: Gunzip | undefined;
  /** The source's first bytes, held until the compression is known. */
  private sourceHead: Buffer | undefined = Buffer.alloc(0);
  /** The inflated stream's first bytes, held until they are known not to be gzip again. */
  private tarHead: Buffer | undefined;
  private tarBytes = 0;

  constructor(
    private readonly source: NodeJS.ReadableStream,
    private readonly parser: Parser,
    private readonly options: FeedOptions,
  ) {
    source.on("data", this.onSourceData);
    source.on("end", this.onSourceEnd);
    parser.on("drain", this.onParserDrain);
  }

  /** Stops reading for good: no more bytes reach the parser, both streams are destroyed. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.source.removeListener("data", this.onSourceData);
    this.source.removeListener("end", this.onSourceEnd);
    this.parser.removeListener("drain", this.onParserDrain);
    this.inflater?.removeAllListeners("data").on("error", () => {});
    this.inflater?.destroy();
    (this.source as Partial<Readable>).destroy?.();
  }

  private readonly onSourceData = (data: Buffer) => {
    let chunk: Buffer | undefined = data;
    if (this.sourceHead !== undefined) {
      chunk = this.takeHead(Buffer.concat([this.sourceHead, data]), false);
      if (chunk === undefined) return;
    }
    if (!this.inflater) return this.toParser(chunk);
    if (!this.inflater.write(chunk)) this.source.pause();
  };

  private readonly onSourceEnd = () => {
    const rest = this.sourceHead;
    if (rest !== undefined && rest.length > 0) {
      const chunk = this.takeHead(rest, true);
      if (chunk === undefined) return;
      if (!this.inflater) this.toParser(chunk);
      else this.inflater.write(chunk);
    }
    if (this.inflater) this.inflater.end();
    else this.endParser();
  };

  private readonly onParserDrain = () => (this.inflater ?? this.source).resume();

  /**
   * Holds the first bytes until the gzip magic can be told; then decides the compression.
   * Returns what to pass on, or undefined while waiting (or when refused).
   */
  private takeHead(head: Buffer, ended: boolean): Buffer | undefined {
    if (head.length < GZIP_MAGIC.length && !ended) {
      this.sourceHead = head;
      return undefined;
    }
    this.sourceHead = undefined;
    const gzipped = startsWith(head, GZIP_MAGIC);
    if (this.options.gzip === true && !gzipped) return this.refuse("it is not gzip-compressed");
    if (this.options.gzip === false && gzipped) {
      return this.refuse("it is compressed; a plain tar was expected");
    }
    if (gzipped) this.startInflating();
    return head;
  }

  private startInflating(): void {
    const inflater = createGunzip();
    this.inflater = inflater;
    this.tarHead = Buffer.alloc(0);
    inflater.on("data", (chunk: Buffer) => this.inflated(chunk));
    inflater.on("end", () => {
      if (this.tarHead !== undefined && this.tarHead.length > 0) this.toParser(this.tarHead);
      this.endParser();
    });
    inflater.on("drain", () => this.source.resume());
    inflater.on("error", (error: Error) =>
      this.refuse(`its gzip data is invalid (${error.message})`),
    );
  }

  /** node-tar inflates a stream starting with the gzip magic itself: never let it see one. */
  private inflated(chunk: Buffer): void {
    if (this.tarHead === undefined) return this.toParser(chunk);
    const head = Buffer.concat([this.tarHead, chunk]);
    if (head.length < GZIP_MAGIC.length) {
      this.tarHead = head;
      return;
    }
    this.tarHead = undefined;
    if (startsWith(head, GZIP_MAGIC)) return void this.refuse("it is compressed twice");
    this.toParser(head);
  }

  private toParser(chunk: Buffer): void {
    if (this.stopped) return;
    this.tarBytes += chunk.length;
    if (this.tarBytes > this.options.maxTarBytes) {
      return void this.refuse(
        `it holds more than ${this.options.maxTarBytes} bytes of tar data once inflated (the limit)`,
      );
    }
    if (!this.guarded(() => this.parser.write(chunk))) (this.inflater ?? this.source).pause();
  }

  private endParser(): void {
    if (!this.stopped) this.guarded(() => this.parser.end());
  }

  /**
   * node-tar throws (rather than emitting an error) on some malformed input, e.g. an
   * archive that ends inside an entry whose last bytes came in a short chunk ("writing
   * more to entry than is appropriate"). Thrown from a stream callback, that would be an
   * uncaught exception that ends the whole host process: a refusal instead.
   */
  private guarded(action: () => unknown): boolean {
    try {
      return action() !== false;
    } catch (error) {
      this.refuse(`it is not a valid tar archive (${(error as Error).message})`);
      return true;
    }
  }

  private refuse(problem: string): undefined {
    if (!this.refused && !this.stopped) {
      this.refused = true;
      this.options.onRefused(problem);
    }
    return undefined;
  }
}

function startsWith(data: Buffer, magic: Buffer): boolean {
  return data.length >= magic.length && data.subarray(0, magic.length).equals(magic);
}
