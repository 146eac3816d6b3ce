import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { HostAddresses } from "../../src/network/addresses.js";
import { encodeNetFrame, NetFrameReader } from "../../src/network/frame-stream.js";
import { RefusalLog } from "../../src/network/refusals.js";
import { startGuestFrameRelay } from "../../src/network/relay.js";
import { ipv4Frame, SYN, SYN_ACK } from "../helpers/net-frames.js";

describe("chardev frame stream", () => {
  it("splits frames however the bytes are chunked", () => {
    const frames = [Buffer.from("a"), Buffer.alloc(0), Buffer.alloc(1514, 7), Buffer.from("xyz")];
    const stream = Buffer.concat(frames.map(encodeNetFrame));
    for (const size of [1, 2, 3, 5, 64, stream.length]) {
      const reader = new NetFrameReader();
      const out: Buffer[] = [];
      for (let at = 0; at < stream.length; at += size)
        for (const event of reader.push(stream.subarray(at, at + size)))
          if (event.kind === "frame") out.push(event.frame);
      expect(
        out.map((f) => f.toString("hex")),
        `chunk size ${size}`,
      ).toEqual(frames.map((f) => f.toString("hex")));
      expect(reader.bufferedBytes).toBe(0);
    }
  });

  it("skips an oversized frame without buffering it and stays in step", () => {
    const reader = new NetFrameReader(100);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(5_000);
    expect(reader.push(header)).toEqual([{ kind: "oversized", length: 5_000 }]);
    for (let sent = 0; sent < 5_000; sent += 1_000) {
      expect(reader.push(Buffer.alloc(1_000))).toEqual([]);
      expect(reader.bufferedBytes).toBe(0);
    }
    expect(reader.push(encodeNetFrame(Buffer.from("next")))).toEqual([
      { kind: "frame", frame: Buffer.from("next") },
    ]);
  });

  it("holds at most one frame's worth of a frame still arriving", () => {
    const reader = new NetFrameReader(100);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(100);
    reader.push(header);
    reader.push(Buffer.alloc(99));
    expect(reader.bufferedBytes).toBe(103);
    expect(reader.push(Buffer.alloc(1))).toHaveLength(1);
  });
});

describe("refusal log", () => {
  it("counts every refusal but writes one line per kind and destination per interval", () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    const lines: string[] = [];
    const log = new RefusalLog((line) => lines.push(line), { intervalMs: 1_000, now: () => now });
    for (let i = 0; i < 50; i += 1) log.refuse("guard", "loopback", "tcp 127.0.0.1:22");
    log.refuse("guard", "link-local", "tcp 169.254.169.254:80");
    expect(lines).toHaveLength(2);
    now += 1_000;
    log.refuse("guard", "loopback", "tcp 127.0.0.1:22");
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe(
      "2026-01-01T00:00:01.000Z refused guard loopback tcp 127.0.0.1:22 (+49 not logged)\n",
    );
    expect(log.counters()).toEqual({
      refused_total: 52,
      refused_by_reason: { loopback: 51, "link-local": 1 },
    });
  });

  it("keeps a guest-chosen name on one printable line", () => {
    const lines: string[] = [];
    const log = new RefusalLog((line) => lines.push(line));
    log.refuse("proxy", "not-allowed", `evil.test\nfake line ${"x".repeat(500)}`);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.split("\n")).toHaveLength(2);
    expect(lines[0]!.length).toBeLessThan(300);
  });
});

describe("frame relay", () => {
  function relayWith(ports: number[] = []) {
    const fromGuest = new PassThrough();
    const toNetwork = new PassThrough();
    const lines: string[] = [];
    const refusals = new RefusalLog((line) => lines.push(line));
    const relay = startGuestFrameRelay({
      fromGuest,
      toNetwork,
      policy: { allowlist_proxy_port: null, published_guest_ports: ports },
      refusals,
      hostAddresses: new HostAddresses(
        60_000,
        () => 0,
        () => [],
      ),
    });
    const forwarded = new NetFrameReader();
    const received = () =>
      forwarded
        .push(toNetwork.read() ?? Buffer.alloc(0))
        .map((e) => (e.kind === "frame" ? e.frame : null));
    return { fromGuest, relay, refusals, lines, received };
  }

  it("forwards allowed frames byte for byte and drops refused ones, counting both", () => {
    const { fromGuest, relay, refusals, lines, received } = relayWith();
    const allowed = ipv4Frame({ destination: "10.251.7.2", destinationPort: 80 });
    const refused = ipv4Frame({ destination: "169.254.169.254", destinationPort: 80 });
    fromGuest.write(Buffer.concat([allowed, refused, allowed].map(encodeNetFrame)));
    expect(received()).toEqual([allowed, allowed]);
    expect(relay.counters()).toEqual({ frames_passed: 2, frames_refused: 1, frames_dropped: 0 });
    expect(refusals.counters().refused_by_reason).toEqual({ "link-local": 1 });
    expect(lines[0]).toContain("refused guard link-local tcp 169.254.169.254:80");
  });

  it("counts an oversized frame as a refusal", () => {
    const { fromGuest, relay, refusals } = relayWith();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1 << 30);
    fromGuest.write(header);
    expect(relay.counters().frames_refused).toBe(1);
    expect(refusals.counters().refused_by_reason).toEqual({ oversized: 1 });
  });

  it("follows published ports as they change", () => {
    const { fromGuest, relay, received } = relayWith();
    const reply = ipv4Frame({ destination: "10.0.2.2", sourcePort: 8080, tcpFlags: SYN_ACK });
    fromGuest.write(encodeNetFrame(reply));
    expect(received()).toEqual([]);
    relay.setPublishedGuestPorts([8080]);
    fromGuest.write(encodeNetFrame(reply));
    fromGuest.write(
      encodeNetFrame(ipv4Frame({ destination: "10.0.2.2", sourcePort: 8080, tcpFlags: SYN })),
    );
    expect(received()).toEqual([reply]);
    relay.setPublishedGuestPorts([]);
    fromGuest.write(encodeNetFrame(reply));
    expect(received()).toEqual([]);
  });

  it("drops allowed frames instead of queueing without bound when QEMU stops reading", () => {
    const { fromGuest, relay } = relayWith();
    const frame = encodeNetFrame(
      ipv4Frame({ destination: "10.251.7.2", payload: Buffer.alloc(1_400) }),
    );
    // Nothing reads toNetwork: after about 1 MiB queued, frames are dropped, not buffered.
    for (let i = 0; i < 2_000; i += 1) fromGuest.write(frame);
    const counters = relay.counters();
    expect(counters.frames_passed).toBeLessThan(900);
    expect(counters.frames_passed + counters.frames_dropped).toBe(2_000);
  });

  it("stops judging after close", () => {
    const { fromGuest, relay } = relayWith();
    relay.close();
    fromGuest.write(encodeNetFrame(ipv4Frame({ destination: "10.251.7.2" })));
    expect(relay.counters().frames_passed).toBe(0);
  });
});
