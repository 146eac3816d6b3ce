import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameReader,
  MAX_PAYLOAD_BYTES,
  ProtocolError,
  type Frame,
} from "../../src/guest/frame.js";
import { propertyRuns, propertySeed, random } from "../helpers/random.js";

const RUNS = propertyRuns(200);
const SEED = propertySeed(7001);
/** `npm run fuzz` raises RUNS a lot; the time allowed grows with it. */
const TIMEOUT_MS = Math.max(5_000, RUNS * 10);

type Rng = () => number;

function int(rng: Rng, below: number): number {
  return Math.floor(rng() * below);
}

function bytes(rng: Rng, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = int(rng, 256);
  return out;
}

/** Mostly small payloads, sometimes empty, now and then one near the limit. */
function payloadLength(rng: Rng): number {
  const pick = rng();
  if (pick < 0.1) return 0;
  if (pick < 0.98) return int(rng, 300);
  return MAX_PAYLOAD_BYTES - int(rng, 4);
}

function randomFrames(rng: Rng): Frame[] {
  return Array.from({ length: 1 + int(rng, 6) }, () => ({
    channel: int(rng, 2 ** 32),
    type: int(rng, 256),
    payload: payload(rng, payloadLength(rng)),
  }));
}

/** Random bytes; a large payload repeats a random block, which is as good and much faster. */
function payload(rng: Rng, length: number): Buffer {
  if (length <= 4096) return bytes(rng, length);
  return Buffer.alloc(length, bytes(rng, 1 + int(rng, 4096)));
}

/** Cuts `wire` at random points, like a socket delivering it in arbitrary chunks. */
function split(rng: Rng, wire: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  let offset = 0;
  while (offset < wire.length) {
    const size = rng() < 0.3 ? 1 + int(rng, 3) : 1 + int(rng, 70_000);
    chunks.push(wire.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}

/** The reference: decode a complete buffer in one pass, straight from the spec's layout. */
function referenceDecode(wire: Buffer): { frames: Frame[]; error: boolean } {
  const frames: Frame[] = [];
  let offset = 0;
  while (wire.length - offset >= FRAME_HEADER_BYTES) {
    const length = wire.readUInt32LE(offset);
    if (length > MAX_PAYLOAD_BYTES) return { frames, error: true };
    const end = offset + FRAME_HEADER_BYTES + length;
    if (end > wire.length) break;
    frames.push({
      channel: wire.readUInt32LE(offset + 4),
      type: wire.readUInt8(offset + 8),
      payload: wire.subarray(offset + FRAME_HEADER_BYTES, end),
    });
    offset = end;
  }
  return { frames, error: false };
}

function decodeInChunks(chunks: Buffer[]): { frames: Frame[]; error: unknown } {
  const reader = new FrameReader();
  const frames: Frame[] = [];
  try {
    for (const chunk of chunks) frames.push(...reader.push(chunk));
  } catch (error) {
    return { frames, error };
  }
  return { frames, error: undefined };
}

const summary = (frames: Frame[]) =>
  frames.map((f) => {
    const digest = createHash("sha1").update(f.payload).digest("hex");
    return `${f.channel}/${f.type}/${f.payload.length}/${digest}`;
  });

describe(`frame decoder properties (seed ${SEED}, ${RUNS} runs)`, () => {
  it(
    "decodes encoded frames identically however the stream is cut",
    () => {
      for (let run = 0; run < RUNS; run++) {
        const rng = random(SEED + run);
        const frames = randomFrames(rng);
        const wire = Buffer.concat(frames.map((f) => encodeFrame(f.channel, f.type, f.payload)));
        const decoded = decodeInChunks(split(rng, wire));
        expect(decoded.error, `seed ${SEED + run}`).toBeUndefined();
        expect(summary(decoded.frames), `seed ${SEED + run}`).toEqual(summary(frames));
      }
    },
    TIMEOUT_MS,
  );

  it(
    "on random and mutated bytes yields what the reference yields, or a ProtocolError",
    () => {
      let refused = 0;
      let decodedSome = 0;
      for (let run = 0; run < RUNS; run++) {
        const rng = random(SEED + run);
        const wire = rng() < 0.5 ? bytes(rng, int(rng, 400)) : mutated(rng);
        const expected = referenceDecode(wire);
        const decoded = decodeInChunks(split(rng, wire));
        const where = `seed ${SEED + run}`;
        if (expected.error) {
          expect(decoded.error, where).toBeInstanceOf(ProtocolError);
          refused += 1;
        } else {
          expect(decoded.error, where).toBeUndefined();
        }
        // Never a frame the reference would not give: whole, in order. (Frames of the chunk
        // that held a bad header may be lost with it; the connection is dropped then anyway.)
        const got = summary(decoded.frames);
        const want = summary(expected.frames);
        if (expected.error) expect(want.slice(0, got.length), where).toEqual(got);
        else expect(got, where).toEqual(want);
        if (expected.frames.length) decodedSome += 1;
      }
      // Both outcomes must really occur, or the property tested nothing.
      expect(refused, `seed ${SEED}`).toBeGreaterThan(0);
      expect(decodedSome, `seed ${SEED}`).toBeGreaterThan(0);
    },
    TIMEOUT_MS,
  );
});

/** Valid small frames with a few bytes flipped (often in a length field). */
function mutated(rng: Rng): Buffer {
  const frames = Array.from({ length: 1 + int(rng, 5) }, () => ({
    channel: int(rng, 16),
    type: 1 + int(rng, 5),
    payload: bytes(rng, int(rng, 40)),
  }));
  const wire = Buffer.concat(frames.map((f) => encodeFrame(f.channel, f.type, f.payload)));
  for (let flips = 1 + int(rng, 3); flips > 0 && wire.length; flips--) {
    wire[int(rng, wire.length)] = int(rng, 256);
  }
  return wire;
}
