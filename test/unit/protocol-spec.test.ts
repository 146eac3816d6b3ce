import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import * as frame from "../../src/guest/frame.js";

const spec = JSON.parse(readFileSync("protocol/spec.json", "utf8"));
const header = readFileSync("agent/src/protocol.h", "utf8");

function cDefine(name: string): string {
  const match = new RegExp(`^#define\\s+${name}\\s+(.+?)\\s*$`, "m").exec(header);
  if (!match) throw new Error(`agent/src/protocol.h lacks ${name}`);
  return match[1]!.replace(/^\((.*)\)$/, "$1").replace(/u$/i, "");
}

describe("protocol/spec.json is the one source of the wire constants", () => {
  it("the TypeScript codec matches the spec", () => {
    expect(frame.PROTOCOL_VERSION).toBe(spec.protocol_version);
    expect(frame.FRAME_HEADER_BYTES).toBe(spec.header.size_bytes);
    expect(frame.MAX_PAYLOAD_BYTES).toBe(spec.limits.max_payload_bytes);
    expect(frame.MAX_CONTROL_BYTES).toBe(spec.limits.max_control_bytes);
    expect(frame.FrameType.stdinEof).toBe(spec.frame_types.stdin_eof);
    expect(frame.AGENT_VSOCK_PORT).toBe(spec.ports.vsock_port);
  });

  it("the C agent's header matches the spec", () => {
    expect(Number(cDefine("PYRO_PROTOCOL_VERSION"))).toBe(spec.protocol_version);
    expect(Number(cDefine("PYRO_FRAME_HEADER_SIZE"))).toBe(spec.header.size_bytes);
    for (const [key, value] of Object.entries(spec.limits)) {
      expect(Number(cDefine(`PYRO_${key.toUpperCase()}`)), key).toBe(value);
    }
    for (const [key, value] of Object.entries(spec.frame_types)) {
      expect(Number(cDefine(`PYRO_FRAME_${key.toUpperCase()}`)), key).toBe(value);
    }
    expect(Number(cDefine("PYRO_VSOCK_PORT"))).toBe(spec.ports.vsock_port);
    expect(JSON.parse(cDefine("PYRO_VIRTIO_SERIAL_NAME"))).toBe(spec.ports.virtio_serial_name);
  });
});
