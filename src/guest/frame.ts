import { readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../util/paths.js";

interface ProtocolSpec {
  protocol_version: number;
  header: { size_bytes: number };
  limits: { max_payload_bytes: number; max_control_bytes: number };
  frame_types: Record<"control" | "stdout" | "stderr" | "stdin" | "stdin_eof", number>;
  ports: { virtio_serial_name: string; vsock_port: number };
}

const spec = JSON.parse(
  readFileSync(join(packageRoot, "protocol", "spec.json"), "utf8"),
) as ProtocolSpec;

/** Wire constants of the host ↔ agent protocol; `protocol/spec.json` is their one source. */
export const PROTOCOL_VERSION: number = spec.protocol_version;
export const FRAME_HEADER_BYTES: number = spec.header.size_bytes;
export const MAX_PAYLOAD_BYTES: number = spec.limits.max_payload_bytes;
export const MAX_CONTROL_BYTES: number = spec.limits.max_control_bytes;
export const FrameType = {
  control: spec.frame_types.control,
  stdout: spec.frame_types.stdout,
  stderr: spec.frame_types.stderr,
  stdin: spec.frame_types.stdin,
  stdinEof: spec.frame_types.stdin_eof,
} as const;
export const AGENT_PORT_NAME: string = spec.ports.virtio_serial_name;
export const AGENT_VSOCK_PORT: number = spec.ports.vsock_port;

export interface Frame {
  channel: number;
  type: number;
  payload: Buffer;
}

export class ProtocolError extends Error {
  override name = "ProtocolError";
}

export function encodeFrame(channel: number, type: number, payload: Uint8Array = Buffer.alloc(0)) {
  if (payload.length > MAX_PAYLOAD_BYTES) {
    throw new ProtocolError(`frame payload of ${payload.length} bytes exceeds the limit`);
  }
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt32LE(channel >>> 0, 4);
  header.writeUInt8(type, 8);
  return Buffer.concat([header, payload]);
}

export function encodeControl(channel: number, message: object): Buffer {
  const payload = Buffer.from(JSON.stringify(message), "utf8");
  if (payload.length > MAX_CONTROL_BYTES) {
    throw new ProtocolError(`control message of ${payload.length} bytes exceeds the limit`);
  }
  return encodeFrame(channel, FrameType.control, payload);
}

/** Parses a control payload from the (untrusted) peer: it must be one JSON object. */
export function decodeControl(payload: Buffer): Record<string, unknown> {
  if (payload.length > MAX_CONTROL_BYTES) throw new ProtocolError("control message too large");
  let value: unknown;
  try {
    value = JSON.parse(payload.toString("utf8"));
  } catch {
    throw new ProtocolError("control message is not valid JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ProtocolError("control message is not a JSON object");
  }
  return value as Record<string, unknown>;
}

/**
 * Incremental decoder: feed it stream chunks, get whole frames. A length above the limit
 * is a protocol error rather than an allocation, so a hostile peer cannot exhaust memory.
 * Each payload is allocated once, when its header is complete, and chunks are copied into
 * it: a frame trickled in tiny chunks costs its own size, not one object per chunk.
 */
export class FrameReader {
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerFilled = 0;
  /** The frame being filled, once its header has been read. */
  private current: (Frame & { filled: number }) | undefined;

  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      offset += this.current ? this.fillPayload(chunk, offset) : this.fillHeader(chunk, offset);
      if (this.current && this.current.filled === this.current.payload.length) {
        const { channel, type, payload } = this.current;
        frames.push({ channel, type, payload });
        this.current = undefined;
      }
    }
    return frames;
  }

  private fillHeader(chunk: Buffer, offset: number): number {
    const copied = chunk.copy(this.header, this.headerFilled, offset);
    this.headerFilled += copied;
    if (this.headerFilled < FRAME_HEADER_BYTES) return copied;
    this.headerFilled = 0;
    const length = this.header.readUInt32LE(0);
    if (length > MAX_PAYLOAD_BYTES) {
      throw new ProtocolError(`peer sent a frame of ${length} bytes (limit ${MAX_PAYLOAD_BYTES})`);
    }
    this.current = {
      channel: this.header.readUInt32LE(4),
      type: this.header.readUInt8(8),
      payload: Buffer.allocUnsafe(length),
      filled: 0,
    };
    return copied;
  }

  private fillPayload(chunk: Buffer, offset: number): number {
    const frame = this.current!;
    const copied = chunk.copy(frame.payload, frame.filled, offset);
    frame.filled += copied;
    return copied;
  }
}
