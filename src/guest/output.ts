/** Keeps the first `limit` bytes of a stream and remembers whether anything was dropped. */
export class BoundedBuffer {
  private readonly parts: Buffer[] = [];
  private size = 0;
  truncated = false;
  /** Every byte that arrived, kept or not. */
  seen = 0;

  constructor(private readonly limit: number) {}

  /** The part of `chunk` within the limit (stored too when `store`). */
  append(chunk: Buffer, store: boolean): Buffer {
    this.seen += chunk.length;
    const room = this.limit - this.size;
    if (chunk.length > room) this.truncated = true;
    const kept = chunk.length > room ? chunk.subarray(0, Math.max(room, 0)) : chunk;
    if (kept.length) {
      if (store) this.parts.push(kept);
      this.size += kept.length;
    }
    return kept;
  }

  contents(): Buffer {
    return Buffer.concat(this.parts);
  }
}
