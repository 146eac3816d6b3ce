import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { describe, expect, it } from "vitest";
import { allowedDomains } from "../../src/contract/network.js";
import { isPyroError } from "../../src/contract/errors.js";
import { domainAllowed, parseDomainPatterns } from "../../src/network/domains.js";
import { readClientHello } from "../../src/network/tls-sni.js";
import { refusedDestination, HostAddresses } from "../../src/network/addresses.js";
import { splitAuthority } from "../../src/network/proxy-target.js";

describe("domain patterns", () => {
  it("accepts exact names, wildcards, listed IPv4 addresses and removes duplicates", () => {
    expect(
      parseDomainPatterns([
        "example.org",
        "*.example.org",
        "pypi.org",
        "a-b.c0.io",
        "10.1.2.3",
        "pypi.org",
      ]),
    ).toEqual(["example.org", "*.example.org", "pypi.org", "a-b.c0.io", "10.1.2.3"]);
  });

  const bad = [
    "exa mple.org",
    "Example.org",
    "example.org.",
    ".example.org",
    "*example.org",
    "*.*.example.org",
    "ex*.org",
    "-example.org",
    "example-.org",
    "a..b",
    "http://example.org",
    "example.org:443",
    "[::1]",
    "",
    `${"a".repeat(64)}.org`,
    `${"abcdefghi.".repeat(26)}org`,
  ];
  for (const pattern of bad)
    it(`refuses ${JSON.stringify(pattern.slice(0, 40))} with invalid_argument naming the accepted form`, () => {
      let error: unknown;
      try {
        parseDomainPatterns(["ok.org", pattern]);
      } catch (caught) {
        error = caught;
      }
      expect(isPyroError(error) && error.code).toBe("invalid_argument");
      expect((error as Error).message).toContain('"*.example.org"');
    });

  it("the contract's zod schema accepts and refuses exactly the same entries", () => {
    expect(allowedDomains.safeParse(["example.org", "*.example.org", "10.1.2.3"]).success).toBe(
      true,
    );
    for (const pattern of bad)
      expect(allowedDomains.safeParse([pattern]).success, pattern).toBe(false);
    expect(
      allowedDomains.safeParse(Array.from({ length: 257 }, (_, i) => `h${i}.org`)).success,
    ).toBe(false);
  });

  it("refuses more than 256 entries", () => {
    const many = Array.from({ length: 257 }, (_, i) => `h${i}.org`);
    expect(() => parseDomainPatterns(many)).toThrow(/at most 256/);
  });

  it("matches a wildcard to subdomains only, never the apex or a look-alike", () => {
    const list = ["*.example.org", "pypi.org"];
    expect(domainAllowed(list, "a.example.org")).toBe(true);
    expect(domainAllowed(list, "a.b.example.org")).toBe(true);
    expect(domainAllowed(list, "A.Example.ORG.")).toBe(true);
    expect(domainAllowed(list, "example.org")).toBe(false);
    expect(domainAllowed(list, "badexample.org")).toBe(false);
    expect(domainAllowed(list, "example.org.evil.test")).toBe(false);
    expect(domainAllowed(list, "pypi.org")).toBe(true);
    expect(domainAllowed(list, "files.pypi.org")).toBe(false);
  });

  it("admits an IP literal only when listed as is, never through a wildcard", () => {
    expect(domainAllowed(["*.3"], "10.1.2.3")).toBe(false);
    expect(domainAllowed(["10.1.2.3"], "10.1.2.3")).toBe(true);
    expect(domainAllowed(["*.example.org"], "::1")).toBe(false);
  });
});

describe("addresses the proxy never connects to", () => {
  const host = new HostAddresses(
    60_000,
    () => 0,
    () => ["192.168.1.20", "fe80::1"],
  );
  it("refuses loopback, link-local, the host's own and mapped forms; allows others", () => {
    expect(refusedDestination("127.0.0.1", host)).toBe("loopback");
    expect(refusedDestination("169.254.169.254", host)).toBe("link-local");
    expect(refusedDestination("192.168.1.20", host)).toBe("host-address");
    expect(refusedDestination("::1", host)).toBe("loopback");
    expect(refusedDestination("::ffff:127.0.0.1", host)).toBe("loopback");
    expect(refusedDestination("fe80::2", host)).toBe("link-local");
    expect(refusedDestination("10.251.7.2", host)).toBe(null);
    expect(refusedDestination("2001:db8::1", host)).toBe(null);
  });

  it("splits CONNECT authorities, IPv6 in brackets", () => {
    expect(splitAuthority("example.org:443")).toEqual({ host: "example.org", port: 443 });
    expect(splitAuthority("[::1]:443")).toEqual({ host: "::1", port: 443 });
    expect(splitAuthority("example.org")).toBe(null);
    expect(splitAuthority("a:b:443")).toBe(null);
  });
});

/** A real ClientHello, as OpenSSL (through node:tls) sends it for `servername`. */
async function clientHelloFor(servername: string | undefined): Promise<Buffer> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const [socket] = await Promise.all([
    once(server, "connection"),
    (async () => {
      const tls = tlsConnect({ host: "127.0.0.1", port, ...(servername ? { servername } : {}) });
      tls.on("error", () => {});
      return tls;
    })(),
  ]);
  const [data] = (await once(socket[0], "data")) as [Buffer];
  socket[0].destroy();
  server.close();
  return data;
}

describe("TLS ClientHello server name", () => {
  it("reads the SNI of a real ClientHello, whole or in pieces", async () => {
    const hello = await clientHelloFor("files.example.org");
    expect(readClientHello(hello)).toEqual({ kind: "server-name", name: "files.example.org" });
    for (let cut = 0; cut < hello.length; cut += 37)
      expect(readClientHello(hello.subarray(0, cut)).kind, `cut ${cut}`).toBe("need-more");
  });

  it("reports a ClientHello without SNI as having no name", async () => {
    expect(readClientHello(await clientHelloFor(undefined))).toEqual({
      kind: "server-name",
      name: null,
    });
  });

  it("calls plain text and corrupted hellos not TLS", async () => {
    expect(readClientHello(Buffer.from("GET / HTTP/1.1\r\n\r\n")).kind).toBe("not-tls");
    expect(readClientHello(Buffer.from("SSH-2.0-OpenSSH_9.2\r\n")).kind).toBe("not-tls");
    const hello = await clientHelloFor("files.example.org");
    // A session-id length that runs past the hello.
    const corrupt = Buffer.from(hello);
    corrupt[5 + 4 + 34] = 0xff;
    expect(readClientHello(corrupt).kind).toBe("not-tls");
  });
});
