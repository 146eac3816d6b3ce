/**
 * The framing of QEMU's `filter-redirector` chardevs (and of `-netdev socket`): each
 * Ethernet frame is a uint32 big-endian length followed by that many bytes, with no vnet
 * header (`vnet_hdr_support` stays off).
 */

/** Largest frame the guard forwards: a 1500-byte MTU frame plus a VLAN tag, with room to spare. */
export const MAX_NET_FRAME_BYTES = 9_216;

/** Prefixes one frame with its length, ready to write to the chardev stream. */
export function encodeNetFrame(frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + frame.length);
  out.writeUInt32BE(frame.length, 0);
  out.set(frame, 4);
  return out;
}

/** What the reader yields: a whole frame, or the fact that an oversized one was skipped. */
export type NetFrameEvent =
  { kind: "frame"; frame: Buffer } | { kind: "oversized"; length: number };

/**
 * Splits the chardev byte stream into frames. An oversized frame is skipped byte by byte
 * as it arrives, never buffered, so a bogus length cannot make the host hold 4 GiB; the
 * stream stays in step because the length still says where the next frame starts.
 */
export class NetFrameReader {
  private pending: Buffer = Buffer.alloc(0);
  private skipBytes = 0;

  constructor(private readonly maxFrameBytes = MAX_NET_FRAME_BYTES) {}

  /** Feeds bytes in; returns every event they complete, in order. */
  push(chunk: Buffer): NetFrameEvent[] {
    const events: NetFrameEvent[] = [];
    let data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    while (data.length > 0) {
      if (this.skipBytes > 0) {
        const skipped = Math.min(this.skipBytes, data.length);
        this.skipBytes -= skipped;
        data = data.subarray(skipped);
        continue;
      }
      if (data.length < 4) break;
      const length = data.readUInt32BE(0);
      if (length > this.maxFrameBytes) {
        events.push({ kind: "oversized", length });
        this.skipBytes = length;
        data = data.subarray(4);
        continue;
      }
      if (data.length < 4 + length) break;
      // A copy, so a frame handed on never pins (or aliases) the reader's buffer.
      events.push({ kind: "frame", frame: Buffer.from(data.subarray(4, 4 + length)) });
      data = data.subarray(4 + length);
    }
    this.pending = Buffer.from(data);
    return events;
  }

  /** Bytes held for a frame not yet complete (at most maxFrameBytes + 3). */
  get bufferedBytes(): number {
    return this.pending.length;
  }
}
