import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import {
  decodeControl,
  encodeControl,
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameReader,
  FrameType,
  MAX_PAYLOAD_BYTES,
  ProtocolError,
} from "../../src/guest/frame.js";

describe("frame codec", () => {
  it("round-trips frames split at every byte boundary", () => {
    const wire = Buffer.concat([
      encodeControl(7, { op: "hello" }),
      encodeFrame(7, FrameType.stdout, Buffer.from("out")),
      encodeFrame(9, FrameType.stderr),
    ]);
    for (let split = 0; split <= wire.length; split++) {
      const reader = new FrameReader();
      const frames = [
        ...reader.push(wire.subarray(0, split)),
        ...reader.push(wire.subarray(split)),
      ];
      expect(frames.map((f) => [f.channel, f.type, f.payload.toString()])).toEqual([
        [7, FrameType.control, '{"op":"hello"}'],
        [7, FrameType.stdout, "out"],
        [9, FrameType.stderr, ""],
      ]);
    }
  });

  it("refuses a length field above the limit instead of buffering it", () => {
    const header = Buffer.alloc(FRAME_HEADER_BYTES);
    header.writeUInt32LE(MAX_PAYLOAD_BYTES + 1, 0);
    expect(() => new FrameReader().push(header)).toThrow(ProtocolError);
  });

  it("rejects control payloads that are not one JSON object", () => {
    expect(() => decodeControl(Buffer.from("[1,2]"))).toThrow(/not a JSON object/);
    expect(() => decodeControl(Buffer.from("{oops"))).toThrow(/not valid JSON/);
    expect(decodeControl(Buffer.from('{"type":"exit"}'))).toEqual({ type: "exit" });
  });

  it("will not encode an oversized payload", () => {
    expect(() => encodeFrame(1, FrameType.stdin, Buffer.alloc(MAX_PAYLOAD_BYTES + 1))).toThrow(
      ProtocolError,
    );
  });

  it("keeps a trickled 1 MiB frame in one buffer, not one object per chunk", () => {
    const payload = Buffer.alloc(MAX_PAYLOAD_BYTES, 7);
    const wire = encodeFrame(3, FrameType.stdout, payload);
    const reader = new FrameReader();
    const before = retainedBytes();
    // Every byte but the last, each in its own chunk as a slow socket would deliver it.
    let early = 0;
    for (let i = 0; i < wire.length - 1; i++) {
      early += reader.push(Buffer.from(wire.subarray(i, i + 1))).length;
    }
    expect(early).toBe(0);
    const growth = retainedBytes() - before;
    // The payload itself is 1 MiB; keeping each chunk cost about 60 MiB before the fix.
    expect(growth).toBeLessThan(8 << 20);
    const [frame] = reader.push(wire.subarray(wire.length - 1));
    expect(frame?.payload.equals(payload)).toBe(true);
  });
});

/** Heap plus buffer memory that survives a full garbage collection. */
function retainedBytes(): number {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}
