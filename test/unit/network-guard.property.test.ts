import { describe, expect, it } from "vitest";
import { HostAddresses, numberToIpv4 } from "../../src/network/addresses.js";
import { encodeNetFrame, NetFrameReader } from "../../src/network/frame-stream.js";
import { guestFrameVerdict, type GuardPolicy } from "../../src/network/guard.js";
import { ipv4Frame } from "../helpers/net-frames.js";
import { propertyRuns, propertySeed, random } from "../helpers/random.js";

const host = new HostAddresses(
  60_000,
  () => 0,
  () => ["192.168.1.20"],
);
const POLICIES: GuardPolicy[] = [
  { allowlist_proxy_port: null, published_guest_ports: [] },
  { allowlist_proxy_port: null, published_guest_ports: [8080, 22] },
  { allowlist_proxy_port: 41_234, published_guest_ports: [8080] },
];

/** Destinations no policy may reach, whatever the rest of the frame says. */
function refusedDestination(next: () => number): string {
  const pick = Math.floor(next() * 6);
  const byte = () => Math.floor(next() * 256);
  if (pick === 0) return `127.${byte()}.${byte()}.${byte()}`;
  if (pick === 1) return `169.254.${byte()}.${byte()}`;
  if (pick === 2) return numberToIpv4(((224 + Math.floor(next() * 32)) << 24) >>> 0);
  if (pick === 3) return `0.${byte()}.${byte()}.${byte()}`;
  if (pick === 4) return "192.168.1.20";
  return `10.0.2.${[0, 1, 4, 15, 255][Math.floor(next() * 5)]}`;
}

describe("guard properties", () => {
  const seed = propertySeed(9_001);
  const runs = propertyRuns(2_000);

  it(`never throws on random bytes, and judges every frame (seed ${seed})`, () => {
    const next = random(seed);
    for (let run = 0; run < runs; run += 1) {
      const bytes = Buffer.from(
        Array.from({ length: Math.floor(next() * 80) }, () => Math.floor(next() * 256)),
      );
      // Half the cases look like IPv4 past the Ethernet header, so the deeper parsing runs.
      if (bytes.length > 14 && next() < 0.5) {
        bytes.writeUInt16BE(0x0800, 12);
        bytes[14] = 0x40 | (bytes[14]! & 0x0f);
      }
      const verdict = guestFrameVerdict(bytes, POLICIES[run % 3]!, host);
      expect(typeof verdict.allow, `seed ${seed} run ${run}`).toBe("boolean");
    }
  });

  it(`never lets a frame reach the host, loopback, link-local or slirp's other addresses (seed ${seed})`, () => {
    const next = random(seed + 1);
    for (let run = 0; run < runs; run += 1) {
      const destination = refusedDestination(next);
      const frame = ipv4Frame({
        destination,
        protocol: (["tcp", "udp", "icmp"] as const)[Math.floor(next() * 3)],
        sourcePort: [8080, 22, 41_234, Math.floor(next() * 65_536)][Math.floor(next() * 4)],
        destinationPort: [53, 80, 41_234, Math.floor(next() * 65_536)][Math.floor(next() * 4)],
        tcpFlags: Math.floor(next() * 256),
      });
      const verdict = guestFrameVerdict(frame, POLICIES[run % 3]!, host);
      expect(verdict.allow, `seed ${seed} run ${run}: ${destination}`).toBe(false);
    }
  });

  it(`lets nothing but a non-SYN reply from a published port or the proxy reach 10.0.2.2 (seed ${seed})`, () => {
    const next = random(seed + 2);
    for (let run = 0; run < runs; run += 1) {
      const policy = POLICIES[run % 3]!;
      const sourcePort = [8080, 22, 9_999][Math.floor(next() * 3)]!;
      const destinationPort = [41_234, 80, 8080][Math.floor(next() * 3)]!;
      const tcpFlags = Math.floor(next() * 256);
      const frame = ipv4Frame({ destination: "10.0.2.2", sourcePort, destinationPort, tcpFlags });
      const bareSyn = (tcpFlags & 0x02) !== 0 && (tcpFlags & 0x10) === 0;
      const expected =
        destinationPort === policy.allowlist_proxy_port ||
        (!bareSyn && policy.published_guest_ports.includes(sourcePort));
      expect(guestFrameVerdict(frame, policy, host).allow, `seed ${seed} run ${run}`).toBe(
        expected,
      );
    }
  });

  it(`reads the same frames from the chardev stream however it is split (seed ${seed})`, () => {
    const next = random(seed + 3);
    for (let run = 0; run < Math.ceil(runs / 20); run += 1) {
      const frames = Array.from({ length: 1 + Math.floor(next() * 8) }, () =>
        Buffer.alloc(Math.floor(next() * 1_600), Math.floor(next() * 256)),
      );
      const stream = Buffer.concat(frames.map(encodeNetFrame));
      const reader = new NetFrameReader();
      const out: Buffer[] = [];
      for (let at = 0; at < stream.length;) {
        const size = 1 + Math.floor(next() * 700);
        for (const event of reader.push(stream.subarray(at, at + size)))
          if (event.kind === "frame") out.push(event.frame);
        at += size;
      }
      // Compared as lengths and one digest-like join: deep equality of Buffers is per byte and slow.
      expect(
        out.map((f) => f.length),
        `seed ${seed} run ${run}`,
      ).toEqual(frames.map((f) => f.length));
      expect(Buffer.concat(out).equals(Buffer.concat(frames)), `seed ${seed} run ${run}`).toBe(
        true,
      );
    }
  });
});
