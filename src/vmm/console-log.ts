import { closeSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";
import type { Readable } from "node:stream";

export interface CappedLogLimits {
  /** The first bytes of output, kept for good: the boot messages. */
  headBytes: number;
  /** How much of the latest output is kept after the head. */
  tailBytes: number;
}

/** The guest console: 1 MiB of boot output plus the latest 1 MiB, at most ~3 MiB on disk. */
export const CONSOLE_LOG_LIMITS: CappedLogLimits = { headBytes: 1 << 20, tailBytes: 1 << 20 };
/** The VMM's own stderr: it has little to say, and a guest must not make it fill the disk. */
export const VMM_LOG_LIMITS: CappedLogLimits = { headBytes: 64 << 10, tailBytes: 64 << 10 };

/**
 * A log file a guest cannot grow without bound (it can print forever). The file holds the
 * first `headBytes` of output, then a line saying how much was dropped, then the latest
 * output: once the part after the head reaches twice `tailBytes`, it is cut back to the
 * last `tailBytes`. So the file never exceeds head + 2 × tail (+ the marker line), every
 * write goes straight to disk, and the work per byte stays constant.
 */
export class CappedLog {
  private readonly fd: number;
  private size = 0;
  private dropped = 0;
  /** Where the latest output starts: after the head, or after the "dropped" marker. */
  private tailStart: number;

  constructor(
    path: string,
    private readonly limits: CappedLogLimits = CONSOLE_LOG_LIMITS,
  ) {
    // Read back too: compaction rereads the latest output.
    this.fd = openSync(path, "w+", 0o600);
    this.tailStart = limits.headBytes;
  }

  write(chunk: Buffer): void {
    this.append(chunk);
    if (this.size - this.tailStart > 2 * this.limits.tailBytes) this.compact();
  }

  close(): void {
    closeSync(this.fd);
  }

  private append(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      offset += writeSync(this.fd, chunk, offset, chunk.length - offset, this.size + offset);
    }
    this.size += chunk.length;
  }

  /** Keeps the head and the last `tailBytes`, with a marker between them. */
  private compact(): void {
    const keep = Buffer.alloc(this.limits.tailBytes);
    readSync(this.fd, keep, 0, keep.length, this.size - keep.length);
    this.dropped += this.size - this.tailStart - keep.length;
    const marker = Buffer.from(
      `\n[pyro: ${this.dropped} bytes of output dropped here to bound the log]\n`,
    );
    ftruncateSync(this.fd, this.limits.headBytes);
    this.size = this.limits.headBytes;
    this.append(marker);
    this.tailStart = this.size;
    this.append(keep);
  }
}

/** Copies a stream (a VMM's console or stderr) into a capped log until it closes. */
export function captureToLog(stream: Readable, log: CappedLog): Promise<void> {
  return new Promise((resolve) => {
    stream.on("data", (chunk: Buffer) => log.write(chunk));
    stream.on("error", () => stream.destroy());
    stream.on("close", () => {
      log.close();
      resolve();
    });
  });
}

/**
 * The last `maxBytes` of a file, read without loading the rest: a log may be huge (a
 * guest that printed for hours), and the reader only wants its end.
 */
export async function readFileTail(path: string, maxBytes: number): Promise<string> {
  const file = await open(path, "r").catch(() => undefined);
  if (!file) return "";
  try {
    const { size } = await file.stat();
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await file.read(buffer, 0, length, size - length);
    return buffer.subarray(0, bytesRead).toString("utf8");
  } finally {
    await file.close();
  }
}
