import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import type { Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RefusalLog } from "../../src/network/refusals.js";
import { startAllowlistProxy, type AllowlistProxy } from "../../src/network/proxy.js";
import { createTestNetns, firstLine, spawnTestServer, type TestNetns } from "../helpers/netns.js";
import { tempDir } from "../helpers/temp.js";

// The proxy runs for real against real servers in a test network namespace; only name
// resolution is the test's (a map instead of the host's resolver), so names can point at
// the namespace, the host's loopback and the metadata address without touching DNS.
let netns: TestNetns;
let proxy: AllowlistProxy;
let refusals: RefusalLog;
const logLines: string[] = [];
let ca: Buffer;
let loopbackServer: Server;
let loopbackHits = 0;

beforeAll(async () => {
  const dir = tempDir("pyro-net-proxy-");
  netns = createTestNetns("proxy");
  const { certs, server } = spawnTestServer(netns, dir, [
    "allowed.test",
    "www.allowed.test",
    "other.test",
  ]);
  ca = readFileSync(certs.ca);
  expect(await firstLine(server)).toBe("ready");
  loopbackServer = createServer((_req, res) => {
    loopbackHits += 1;
    res.end("host loopback\n");
  });
  loopbackServer.listen(80, "127.0.0.1");
  await once(loopbackServer, "listening");
  const names: Record<string, string[]> = {
    "allowed.test": [netns.address],
    "www.allowed.test": [netns.address],
    "other.test": [netns.address],
    "loop.allowed.test": ["127.0.0.1"],
    "meta.allowed.test": ["169.254.169.254"],
    "host.allowed.test": [netns.hostAddress],
    "mixed.allowed.test": [netns.address, "127.0.0.1"],
  };
  refusals = new RefusalLog((line) => logLines.push(line));
  proxy = await startAllowlistProxy({
    allowed_domains: ["allowed.test", "*.allowed.test"],
    refusals,
    resolve: async (host) => {
      const found = names[host];
      if (!found) throw new Error(`ENOTFOUND ${host}`);
      return found;
    },
  });
});

afterAll(async () => {
  await proxy?.close();
  loopbackServer?.close();
  netns?.remove();
});

/** A plain-HTTP request through the proxy, in absolute form, as curl with http_proxy sends it. */
async function viaProxy(url: string, headers: Record<string, string> = {}) {
  // Node would send `Host: 127.0.0.1:<proxy port>`; a proxy client sends the target's.
  const host = url.startsWith("http://") ? new URL(url).host : "127.0.0.1";
  const req = request({
    host: "127.0.0.1",
    port: proxy.port,
    path: url,
    headers: { host, ...headers },
  });
  req.end();
  const [res] = (await once(req, "response")) as [IncomingMessage];
  let body = "";
  for await (const chunk of res) body += String(chunk);
  return { status: res.statusCode, body };
}

/** Opens a CONNECT tunnel; returns the proxy's status and, on 200, the socket. */
async function tunnel(authority: string): Promise<{ status: number; socket: Socket }> {
  const req = request({ host: "127.0.0.1", port: proxy.port, method: "CONNECT", path: authority });
  req.end();
  const [event, value] = await Promise.race([
    once(req, "connect").then((args) => ["connect", args] as const),
    once(req, "response").then((args) => ["response", args] as const),
  ]);
  if (event === "connect")
    return { status: (value[0] as IncomingMessage).statusCode!, socket: value[1] as Socket };
  return {
    status: (value[0] as IncomingMessage).statusCode!,
    socket: (value[0] as IncomingMessage).socket,
  };
}

/** An HTTPS GET inside a tunnel, trusting only the test CA. */
async function httpsThrough(socket: Socket, servername: string): Promise<string> {
  const tls = tlsConnect({ socket, servername, ca });
  await once(tls, "secureConnect");
  tls.write(`GET /secure HTTP/1.1\r\nhost: ${servername}\r\nconnection: close\r\n\r\n`);
  let text = "";
  for await (const chunk of tls) text += String(chunk);
  return text;
}

function refusedCount(reason: string): number {
  return refusals.counters().refused_by_reason[reason] ?? 0;
}

describe("allowlist proxy: plain HTTP", () => {
  it("forwards a request for an allowed name and a wildcard subdomain", async () => {
    expect(await viaProxy("http://allowed.test/hello?x=1")).toEqual({
      status: 200,
      body: "http ok /hello?x=1 host=allowed.test\n",
    });
    expect((await viaProxy("http://www.allowed.test/")).body).toBe(
      "http ok / host=www.allowed.test\n",
    );
  });

  it("refuses a name that is not listed with 403, counted and logged", async () => {
    const before = refusedCount("not-allowed");
    const reply = await viaProxy("http://other.test/");
    expect(reply.status).toBe(403);
    expect(reply.body).toContain("other.test:80 is not in this workspace's allowed_domains");
    expect(refusedCount("not-allowed")).toBe(before + 1);
    expect(logLines.some((line) => line.includes("refused proxy not-allowed other.test:80"))).toBe(
      true,
    );
  });

  it("refuses an IP literal that is not listed, even the allowed server's own address", async () => {
    const reply = await viaProxy(`http://${netns.address}/`);
    expect(reply.status).toBe(403);
    expect(refusedCount("ip-literal")).toBeGreaterThan(0);
  });

  it("refuses a listed name that resolves to the host's loopback, link-local or own address", async () => {
    for (const name of [
      "loop.allowed.test",
      "meta.allowed.test",
      "host.allowed.test",
      "mixed.allowed.test",
    ]) {
      const reply = await viaProxy(`http://${name}/`);
      expect(reply.status, name).toBe(403);
      expect(reply.body, name).toContain("resolves to an address the sandbox may never reach");
    }
    expect(loopbackHits).toBe(0);
    expect(refusedCount("refused-address")).toBe(4);
  });

  it("refuses a Host header that names another host than the URI (virtual-host smuggling)", async () => {
    const reply = await viaProxy("http://allowed.test/", { host: "other.test" });
    expect(reply.status).toBe(403);
    expect(refusedCount("host-mismatch")).toBe(1);
  });

  it("answers 502 when an allowed server does not listen, without calling it a refusal", async () => {
    const before = refusals.counters().refused_total;
    expect((await viaProxy("http://allowed.test:81/")).status).toBe(502);
    expect((await tunnel("allowed.test:444")).status).toBe(502);
    expect(refusals.counters().refused_total).toBe(before);
  });

  it("refuses origin-form requests: only a proxy's absolute form names its target", async () => {
    const reply = await viaProxy("/direct", { host: "allowed.test" });
    expect(reply.status).toBe(400);
    expect(refusedCount("not-absolute-uri")).toBe(1);
  });
});

describe("allowlist proxy: CONNECT", () => {
  it("tunnels TLS to an allowed name (the test CA verifies the real server)", async () => {
    const { status, socket } = await tunnel("allowed.test:443");
    expect(status).toBe(200);
    expect(await httpsThrough(socket, "allowed.test")).toContain(
      "https ok /secure host=allowed.test",
    );
  });

  it("refuses CONNECT to a name that is not listed, and to an IP literal", async () => {
    expect((await tunnel("other.test:443")).status).toBe(403);
    expect((await tunnel(`${netns.address}:443`)).status).toBe(403);
    expect((await tunnel("loop.allowed.test:443")).status).toBe(403);
  });

  it("closes a tunnel whose TLS names another server than the CONNECT target (SNI)", async () => {
    const before = refusedCount("sni-mismatch");
    const { status, socket } = await tunnel("allowed.test:443");
    expect(status).toBe(200);
    await expect(httpsThrough(socket, "other.test")).rejects.toThrow();
    expect(refusedCount("sni-mismatch")).toBe(before + 1);
  });

  it("closes a tunnel that carries something other than TLS", async () => {
    const { status, socket } = await tunnel("allowed.test:80");
    expect(status).toBe(200);
    socket.write("GET / HTTP/1.1\r\nhost: allowed.test\r\n\r\n");
    let received = "";
    for await (const chunk of socket) received += String(chunk);
    expect(received).toBe("");
    expect(refusedCount("not-tls")).toBe(1);
  });

  it("counts what it let through and what it refused", () => {
    const counters = proxy.counters();
    // Three plain requests (one to a closed port) and one TLS tunnel; the SNI and not-TLS
    // tunnels were refused, and a CONNECT whose upstream failed never opened.
    expect(counters.proxy_allowed).toBe(4);
    expect(counters.proxy_refused).toBe(refusals.counters().refused_total);
    expect(refusals.counters().refused_by_reason).toEqual({
      "not-allowed": 2,
      "ip-literal": 2,
      "refused-address": 5,
      "host-mismatch": 1,
      "not-absolute-uri": 1,
      "sni-mismatch": 1,
      "not-tls": 1,
    });
    expect(counters.proxy_refused).toBe(13);
  });
});
