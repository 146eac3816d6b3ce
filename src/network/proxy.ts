import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { connect, isIP, type AddressInfo, type Socket } from "node:net";
import { HostAddresses } from "./addresses.js";
import { parseDomainPatterns } from "./domains.js";
import {
  checkTarget,
  splitAuthority,
  systemResolver,
  type ProxyRefusalReason,
  type Resolver,
  type TargetCheck,
} from "./proxy-target.js";
import type { RefusalLog } from "./refusals.js";
import { MAX_CLIENT_HELLO_BYTES, readClientHello } from "./tls-sni.js";

export interface AllowlistProxyOptions {
  allowed_domains: readonly string[];
  refusals: RefusalLog;
  /** Replaced in host tests, which serve test names; by default the host's resolver. */
  resolve?: Resolver;
  hostAddresses?: HostAddresses;
  /** How long the proxy waits for an upstream TCP connection. @default 10000 */
  connect_timeout_ms?: number;
}

export interface AllowlistProxy {
  /** The port on the host's 127.0.0.1; the guest reaches it as 10.0.2.2:port. */
  port: number;
  counters(): { proxy_allowed: number; proxy_refused: number };
  close(): Promise<void>;
}

/** The guest is one client; this bounds how many tunnels and requests it holds open at once. */
const MAX_CONNECTIONS = 256;

/** Headers that belong to one hop (the guest to the proxy), never forwarded (RFC 9110 7.6.1). */
const HOP_HEADERS = new Set([
  "connection",
  "proxy-connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/**
 * The HTTP(S) proxy of a workspace with `allowed_domains`: absolute-URI requests and
 * CONNECT tunnels to listed names only, each name resolved here and every address
 * checked (no loopback, link-local or host address), TLS tunnels' SNI matched to the
 * CONNECT target. Everything else gets a 403 and is counted and logged.
 */
export async function startAllowlistProxy(options: AllowlistProxyOptions): Promise<AllowlistProxy> {
  const check: TargetCheck = {
    allowedDomains: parseDomainPatterns(options.allowed_domains),
    resolve: options.resolve ?? systemResolver,
    hostAddresses: options.hostAddresses ?? new HostAddresses(),
  };
  const connectTimeoutMs = options.connect_timeout_ms ?? 10_000;
  const tally = { proxy_allowed: 0, proxy_refused: 0 };
  const refuse = (reason: ProxyRefusalReason, detail: string) => {
    tally.proxy_refused += 1;
    options.refusals.refuse("proxy", reason, detail);
  };
  const server = createServer((req, res) => {
    void forwardRequest(req, res).catch(() => res.destroy());
  });
  server.maxConnections = MAX_CONNECTIONS;

  async function forwardRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = absoluteHttpUrl(req.url ?? "");
    if (!url) {
      refuse("not-absolute-uri", (req.url ?? "").slice(0, 200));
      return deny(res, 400, "send absolute-URI requests (http://host/path) through this proxy");
    }
    const port = url.port === "" ? 80 : Number(url.port);
    const hostHeader = req.headers.host?.toLowerCase();
    if (hostHeader !== undefined && hostHeader !== url.host.toLowerCase()) {
      refuse("host-mismatch", `${url.host} Host: ${hostHeader}`);
      return deny(res, 403, "the Host header must name the request's own host");
    }
    const decision = await checkTarget(check, url.hostname.replace(/^\[|\]$/g, ""), port);
    if (!decision.allow) {
      refuse(decision.reason, decision.detail);
      return deny(res, 403, refusalText(decision.reason, decision.detail));
    }
    tally.proxy_allowed += 1;
    const upstream = httpRequest({
      host: decision.address,
      port: decision.port,
      method: req.method,
      path: `${url.pathname}${url.search}`,
      headers: { ...endToEndHeaders(req.headers), host: url.host },
    });
    upstream.on("response", (reply) => {
      res.writeHead(reply.statusCode ?? 502, endToEndHeaders(reply.headers));
      reply.pipe(res);
    });
    // A bound on connecting only: a download may then idle as long as the server lets it.
    upstream.on("socket", (socket) => {
      if (!socket.connecting) return;
      socket.setTimeout(connectTimeoutMs, () => upstream.destroy(new Error("connect timed out")));
      socket.once("connect", () => socket.setTimeout(0));
    });
    res.on("close", () => upstream.destroy());
    upstream.on("error", () =>
      res.headersSent ? res.destroy() : deny(res, 502, "upstream failed"),
    );
    req.pipe(upstream);
  }

  server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
    void openTunnel(req, client, head).catch(() => client.destroy());
  });

  const tunnels = new Set<Socket>();

  async function openTunnel(req: IncomingMessage, client: Socket, head: Buffer): Promise<void> {
    tunnels.add(client);
    client.on("close", () => tunnels.delete(client));
    client.on("error", () => client.destroy());
    const authority = splitAuthority(req.url ?? "");
    if (!authority) {
      refuse("bad-target", (req.url ?? "").slice(0, 200));
      return denySocket(client, 400, "CONNECT needs host:port");
    }
    const decision = await checkTarget(check, authority.host, authority.port);
    if (!decision.allow) {
      refuse(decision.reason, decision.detail);
      return denySocket(client, 403, refusalText(decision.reason, decision.detail));
    }
    const upstream = await connectUpstream(decision.address, decision.port, connectTimeoutMs);
    if (!upstream) return denySocket(client, 502, "the upstream connection failed");
    tunnels.add(upstream);
    upstream.on("close", () => tunnels.delete(upstream));
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    const hello = await readTunnelHello(client, head, connectTimeoutMs);
    const refusal = helloRefusal(hello.result, decision.host);
    if (refusal) {
      refuse(refusal, `${decision.host}:${decision.port} sni=${sniText(hello.result)}`);
      upstream.destroy();
      return void client.destroy();
    }
    tally.proxy_allowed += 1;
    splice(client, upstream, hello.bytes);
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    counters: () => ({ ...tally }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of tunnels) socket.destroy();
      }),
  };
}

/** A request target in absolute form with the http scheme, or null. */
function absoluteHttpUrl(target: string): URL | null {
  if (!/^http:\/\//i.test(target)) return null;
  try {
    return new URL(target);
  } catch {
    return null;
  }
}

function endToEndHeaders(headers: IncomingMessage["headers"]): Record<string, string | string[]> {
  const kept: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers))
    if (value !== undefined && !HOP_HEADERS.has(name)) kept[name] = value;
  return kept;
}

function refusalText(reason: ProxyRefusalReason, detail: string): string {
  const why: Partial<Record<ProxyRefusalReason, string>> = {
    "not-allowed": "is not in this workspace's allowed_domains",
    "ip-literal": "is an IP address; only listed names (or listed addresses) are reachable",
    "refused-address": "resolves to an address the sandbox may never reach",
    unresolved: "does not resolve",
  };
  return `pyro allowlist proxy: ${detail} ${why[reason] ?? `refused (${reason})`}`;
}

function deny(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain", connection: "close" });
  res.end(`${text}\n`);
}

function denySocket(client: Socket, status: number, text: string): void {
  const reason = status === 403 ? "Forbidden" : status === 400 ? "Bad Request" : "Bad Gateway";
  client.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(text) + 1}\r\n\r\n${text}\n`,
  );
}

function connectUpstream(host: string, port: number, timeoutMs: number): Promise<Socket | null> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    socket.once("connect", () => {
      socket.setTimeout(0);
      resolve(socket);
    });
    socket.once("timeout", () => socket.destroy());
    socket.once("error", () => resolve(null));
    socket.once("close", () => resolve(null));
  });
}

type HelloResult = ReturnType<typeof readClientHello> | { kind: "timeout" };

/** Buffers the tunnel's first client bytes until its ClientHello is whole (bounded in size and time). */
function readTunnelHello(
  client: Socket,
  head: Buffer,
  timeoutMs: number,
): Promise<{ result: HelloResult; bytes: Buffer }> {
  return new Promise((resolve) => {
    let bytes = head;
    const finish = (result: HelloResult) => {
      clearTimeout(timer);
      client.off("data", onData);
      client.off("close", onClose);
      client.pause();
      resolve({ result, bytes });
    };
    const onData = (chunk: Buffer) => {
      bytes = Buffer.concat([bytes, chunk]);
      judge();
    };
    const onClose = () => finish({ kind: "not-tls" });
    const judge = () => {
      const result = readClientHello(bytes);
      if (result.kind !== "need-more") return finish(result);
      if (bytes.length > MAX_CLIENT_HELLO_BYTES + 1024) finish({ kind: "not-tls" });
    };
    const timer = setTimeout(() => finish({ kind: "timeout" }), timeoutMs);
    client.on("data", onData);
    client.on("close", onClose);
    if (bytes.length > 0) judge();
  });
}

/**
 * A tunnel carries TLS for the name it was opened to: the SNI must be that name. A listed
 * IP literal gets no SNI from a client, so none is expected there.
 */
function helloRefusal(result: HelloResult, host: string): ProxyRefusalReason | null {
  if (result.kind !== "server-name") return "not-tls";
  if (result.name === null) return isIP(host) ? null : "sni-mismatch";
  return result.name.toLowerCase() === host ? null : "sni-mismatch";
}

function sniText(result: HelloResult): string {
  return result.kind === "server-name" ? (result.name ?? "none") : result.kind;
}

function splice(client: Socket, upstream: Socket, first: Buffer): void {
  upstream.on("error", () => client.destroy());
  client.on("close", () => upstream.destroy());
  upstream.on("close", () => client.destroy());
  if (first.length > 0) upstream.write(first);
  client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
}
