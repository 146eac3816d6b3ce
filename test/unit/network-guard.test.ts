import { describe, expect, it } from "vitest";
import { HostAddresses } from "../../src/network/addresses.js";
import { guestFrameVerdict, type GuardPolicy } from "../../src/network/guard.js";
import { ACK, ethernetFrame, ipv4Frame, SYN, SYN_ACK } from "../helpers/net-frames.js";

const EGRESS: GuardPolicy = { allowlist_proxy_port: null, published_guest_ports: [] };
const PUBLISHED: GuardPolicy = { allowlist_proxy_port: null, published_guest_ports: [8080] };
const ALLOWLIST: GuardPolicy = { allowlist_proxy_port: 41_234, published_guest_ports: [] };
/** The host's own addresses as the guard would read them from its interfaces. */
const host = new HostAddresses(
  60_000,
  () => 0,
  () => ["127.0.0.1", "192.168.1.20", "::1"],
);

function verdict(frame: Buffer, policy: GuardPolicy = EGRESS) {
  return guestFrameVerdict(frame, policy, host);
}

function reason(frame: Buffer, policy: GuardPolicy = EGRESS): string | null {
  const result = verdict(frame, policy);
  return result.allow ? null : result.reason;
}

describe("guard: what egress lets through", () => {
  it("passes ARP, TCP, UDP and ICMP to an outside address", () => {
    expect(verdict(ethernetFrame(0x0806, Buffer.alloc(28))).allow).toBe(true);
    expect(verdict(ipv4Frame({ destination: "93.184.216.34", destinationPort: 443 })).allow).toBe(
      true,
    );
    expect(verdict(ipv4Frame({ destination: "10.251.7.2", protocol: "udp" })).allow).toBe(true);
    expect(verdict(ipv4Frame({ destination: "1.1.1.1", protocol: "icmp" })).allow).toBe(true);
  });

  it("passes DNS to slirp's resolver over UDP and TCP port 53 only", () => {
    expect(
      reason(ipv4Frame({ destination: "10.0.2.3", protocol: "udp", destinationPort: 53 })),
    ).toBe(null);
    expect(
      reason(ipv4Frame({ destination: "10.0.2.3", protocol: "tcp", destinationPort: 53 })),
    ).toBe(null);
    expect(
      reason(ipv4Frame({ destination: "10.0.2.3", protocol: "tcp", destinationPort: 80 })),
    ).toBe("dns-port");
    expect(reason(ipv4Frame({ destination: "10.0.2.3", protocol: "icmp" }))).toBe("dns-port");
  });
});

describe("guard: the host is never reachable, under every policy", () => {
  const policies = { egress: EGRESS, published: PUBLISHED, allowlist: ALLOWLIST };
  const cases: [string, string, number][] = [
    ["the host's loopback through slirp's gateway", "10.0.2.2", 22],
    ["loopback", "127.0.0.1", 80],
    ["another loopback address", "127.1.2.3", 80],
    ["cloud metadata", "169.254.169.254", 80],
    ["the host's own interface address", "192.168.1.20", 80],
    ["this network", "0.0.0.0", 80],
    ["multicast", "224.0.0.251", 5353],
    ["broadcast", "255.255.255.255", 67],
    ["reserved", "240.0.0.1", 80],
    ["another slirp address", "10.0.2.4", 445],
  ];
  for (const [name, policy] of Object.entries(policies))
    for (const [what, destination, port] of cases)
      it(`${name}: refuses ${what} (${destination})`, () => {
        expect(verdict(ipv4Frame({ destination, destinationPort: port }), policy).allow).toBe(
          false,
        );
        expect(
          verdict(ipv4Frame({ destination, protocol: "udp", destinationPort: port }), policy).allow,
        ).toBe(false);
      });

  it("names the reason for each refused range", () => {
    expect(reason(ipv4Frame({ destination: "10.0.2.2" }))).toBe("host-alias");
    expect(reason(ipv4Frame({ destination: "127.0.0.1" }))).toBe("loopback");
    expect(reason(ipv4Frame({ destination: "169.254.169.254" }))).toBe("link-local");
    expect(reason(ipv4Frame({ destination: "192.168.1.20" }))).toBe("host-address");
    expect(reason(ipv4Frame({ destination: "0.1.2.3" }))).toBe("this-network");
    expect(reason(ipv4Frame({ destination: "239.1.1.1" }))).toBe("multicast");
    expect(reason(ipv4Frame({ destination: "255.255.255.255" }))).toBe("reserved");
    expect(reason(ipv4Frame({ destination: "10.0.2.255" }))).toBe("slirp-network");
  });

  it("re-reads the host's addresses, so an interface added later is refused too", () => {
    let now = 0;
    let addresses = ["127.0.0.1"];
    const live = new HostAddresses(
      1_000,
      () => now,
      () => addresses,
    );
    const frame = ipv4Frame({ destination: "172.20.0.5" });
    expect(guestFrameVerdict(frame, EGRESS, live).allow).toBe(true);
    addresses = ["127.0.0.1", "172.20.0.5"];
    now = 1_000;
    expect(guestFrameVerdict(frame, EGRESS, live)).toMatchObject({
      allow: false,
      reason: "host-address",
    });
  });
});

describe("guard: published ports", () => {
  const reply = (flags: number, sourcePort = 8080) =>
    ipv4Frame({ destination: "10.0.2.2", sourcePort, destinationPort: 51_000, tcpFlags: flags });

  it("passes the guest's side of a forwarded connection: SYN-ACK, ACK, FIN-ACK, RST", () => {
    for (const flags of [SYN_ACK, ACK, ACK | 0x08, ACK | 0x01, 0x04])
      expect(verdict(reply(flags), PUBLISHED).allow, `flags ${flags}`).toBe(true);
  });

  it("refuses a bare SYN from a published port: that would open a connection to the host", () => {
    expect(verdict(reply(SYN), PUBLISHED)).toMatchObject({ allow: false, reason: "host-alias" });
    expect(verdict(reply(SYN | 0x08), PUBLISHED)).toMatchObject({
      allow: false,
      reason: "host-alias",
    });
  });

  it("refuses replies from a port that is not published, and UDP from a published one", () => {
    expect(verdict(reply(ACK, 8081), PUBLISHED).allow).toBe(false);
    expect(verdict(reply(SYN_ACK), EGRESS).allow).toBe(false);
    const udp = ipv4Frame({ destination: "10.0.2.2", protocol: "udp", sourcePort: 8080 });
    expect(verdict(udp, PUBLISHED).allow).toBe(false);
  });
});

describe("guard: allowlist", () => {
  it("passes only TCP to the proxy on slirp's gateway", () => {
    expect(
      verdict(
        ipv4Frame({ destination: "10.0.2.2", destinationPort: 41_234, tcpFlags: SYN }),
        ALLOWLIST,
      ).allow,
    ).toBe(true);
    expect(
      reason(
        ipv4Frame({ destination: "10.0.2.2", destinationPort: 41_235, tcpFlags: SYN }),
        ALLOWLIST,
      ),
    ).toBe("host-alias");
    expect(
      reason(
        ipv4Frame({ destination: "10.0.2.2", protocol: "udp", destinationPort: 41_234 }),
        ALLOWLIST,
      ),
    ).toBe("host-alias");
  });

  it("refuses raw TCP and UDP anywhere else, and DNS (no tunnel through a resolver)", () => {
    expect(
      reason(ipv4Frame({ destination: "93.184.216.34", destinationPort: 443 }), ALLOWLIST),
    ).toBe("allowlist");
    expect(reason(ipv4Frame({ destination: "10.251.7.2", protocol: "udp" }), ALLOWLIST)).toBe(
      "allowlist",
    );
    expect(
      reason(
        ipv4Frame({ destination: "10.0.2.3", protocol: "udp", destinationPort: 53 }),
        ALLOWLIST,
      ),
    ).toBe("dns-under-allowlist");
  });

  it("does not open the proxy port to a plain egress VM (the port means nothing there)", () => {
    expect(reason(ipv4Frame({ destination: "10.0.2.2", destinationPort: 41_234 }), EGRESS)).toBe(
      "host-alias",
    );
  });
});

describe("guard: frames it cannot judge are dropped", () => {
  it("drops IPv6 and other ethertypes, VLAN-tagged frames included", () => {
    expect(reason(ethernetFrame(0x86dd, Buffer.alloc(40)))).toBe("not-ipv4");
    expect(reason(ethernetFrame(0x8100, Buffer.alloc(60)))).toBe("not-ipv4");
  });

  it("drops fragments: later ones (offset) and first ones (more-fragments)", () => {
    expect(reason(ipv4Frame({ destination: "1.1.1.1", fragmentOffset: 185 }))).toBe("fragment");
    expect(reason(ipv4Frame({ destination: "1.1.1.1", moreFragments: true }))).toBe("fragment");
  });

  it("drops packets whose source is not the guest's own address", () => {
    expect(reason(ipv4Frame({ destination: "1.1.1.1", source: "10.0.2.16" }))).toBe(
      "spoofed-source",
    );
    expect(reason(ipv4Frame({ destination: "1.1.1.1", source: "10.0.2.2" }))).toBe(
      "spoofed-source",
    );
  });

  it("drops protocols other than TCP, UDP and ICMP", () => {
    expect(reason(ipv4Frame({ destination: "1.1.1.1", protocol: 47 }))).toBe("protocol");
  });

  it("drops truncated frames at every length", () => {
    const whole = ipv4Frame({ destination: "1.1.1.1", destinationPort: 443 });
    for (let length = 0; length < whole.length; length += 1)
      expect(reason(whole.subarray(0, length)), `length ${length}`).toBe("malformed");
    expect(verdict(whole).allow).toBe(true);
  });

  it("drops headers whose lengths lie: IHL under 5 or past the end, total length past the end", () => {
    const frame = ipv4Frame({ destination: "1.1.1.1" });
    const shortIhl = Buffer.from(frame);
    shortIhl[14] = 0x44;
    expect(reason(shortIhl)).toBe("malformed");
    const longIhl = Buffer.from(frame);
    longIhl[14] = 0x4f;
    expect(reason(longIhl)).toBe("malformed");
    const longTotal = Buffer.from(frame);
    longTotal.writeUInt16BE(frame.length, 16);
    expect(reason(longTotal)).toBe("malformed");
    const version6 = Buffer.from(frame);
    version6[14] = 0x65;
    expect(reason(version6)).toBe("malformed");
  });

  it("reads ports past IP options (IHL > 5)", () => {
    const plain = ipv4Frame({ destination: "10.0.2.2", destinationPort: 41_234, tcpFlags: SYN });
    const ip = plain.subarray(14, 34);
    const withOptions = Buffer.concat([
      plain.subarray(0, 14),
      ip,
      Buffer.alloc(4, 1),
      plain.subarray(34),
    ]);
    withOptions[14] = 0x46;
    withOptions.writeUInt16BE(plain.length - 14 + 4, 16);
    expect(verdict(withOptions, ALLOWLIST).allow).toBe(true);
    expect(reason(withOptions, EGRESS)).toBe("host-alias");
  });
});
