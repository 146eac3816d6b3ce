/**
 * `pyro mcp serve --http [HOST:]PORT`: the MCP server over the SDK's Streamable HTTP
 * transport at `/mcp`, for clients on other machines or several clients at once.
 * Every request passes, in order: the path, the Host/Origin check (403), the bearer token
 * (401), then its session. Sessions are isolated and release what they created when they
 * end (src/mcp/session-scope.ts).
 */
import {
  type Server,
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { PyroError, type ErrorCode } from "../contract/errors.js";
import type { McpProfile } from "../contract/operations.js";
import { Pyro } from "../sdk/pyro.js";
import { originRefusal, parseListenAddress, type ListenAddress } from "./http-guard.js";
import { HttpSession, type EndReason } from "./http-session.js";
import { bearerMatches, loadToken } from "./http-token.js";
import { allowedDirectories, startDirectoryRoots } from "./roots.js";
import { SessionRegistry } from "./session-scope.js";

export const MCP_HTTP_PATH = "/mcp";

/** Each session holds an SDK server and transport; a client must not grow them unbounded. */
const MAX_SESSIONS = 64;

/**
 * A connection with nothing read or written for this long is closed. Node's own timers
 * start with a request's first byte, so without this anyone reaching the port, token or
 * not, could hold silent connections until the server runs out of file descriptors.
 * SSE streams stay: the SDK sends them a keep-alive comment every 15 s.
 */
const IDLE_CONNECTION_MS = 30_000;

export interface ServeHttpOptions {
  profile: McpProfile;
  /** `--allow-host-path` directories, added to the start directory as host-path roots. */
  allowHostPaths?: readonly string[];
  /** `[HOST:]PORT`; the host defaults to 127.0.0.1. */
  listen: string;
  /** The file holding the bearer token. @default PYRO_HOME/mcp-http.token, made on first use */
  tokenFile?: string;
  /** A session with no request open for this long ends. @default 1800 */
  sessionIdleSeconds?: number;
}

/** Starts the server; it runs until SIGTERM/SIGINT/SIGHUP, which end every session first. */
export async function serveHttp(options: ServeHttpOptions): Promise<void> {
  const listen = parseListenAddress(options.listen);
  const { token, file: tokenFile } = loadToken(options.tokenFile);
  const hostPathRoots = [
    ...startDirectoryRoots(),
    ...allowedDirectories(options.allowHostPaths ?? []),
  ];
  const sessions = new Sessions({ profile: options.profile, hostPathRoots });
  const http = createHttpServer((req, res) => {
    route(req, res, { listen, token, sessions }).catch((error: unknown) => {
      log(`phase=error detail=${JSON.stringify(error instanceof Error ? error.message : error)}`);
      if (!res.headersSent) reply(res, 500, "internal error; see the server's log");
    });
  });
  http.timeout = IDLE_CONNECTION_MS;
  await listenOn(http, listen);
  const idleMs = (options.sessionIdleSeconds ?? 1800) * 1000;
  const sweep = setInterval(
    () => sessions.endIdle(idleMs),
    Math.max(250, Math.min(idleMs / 2, 30_000)),
  );
  const stop = (code: number) => {
    clearInterval(sweep);
    http.close();
    // Ending the sessions releases their VMs and workspaces before the process goes.
    void sessions.endAll().finally(() => {
      http.closeAllConnections();
      process.exit(code);
    });
  };
  process.once("SIGTERM", () => stop(128 + 15));
  process.once("SIGINT", () => stop(128 + 2));
  process.once("SIGHUP", () => stop(128 + 1));
  const { port } = http.address() as AddressInfo;
  const host = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
  const roots = hostPathRoots.length ? hostPathRoots.join(",") : "none";
  log(
    `phase=serve profile=${options.profile} transport=http url=http://${host}:${port}${MCP_HTTP_PATH} ` +
      `token_file=${JSON.stringify(tokenFile)} host_paths=${JSON.stringify(roots)}`,
  );
}

/** Listens, turning the usual failures into errors that say what to change. */
async function listenOn(http: Server, listen: ListenAddress): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      http.once("error", reject);
      http.listen(listen.port, listen.host, resolve);
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const where = `${listen.host} port ${listen.port}`;
    const problem: Record<string, [ErrorCode, string]> = {
      EADDRINUSE: ["conflict", "in use; pick another --http port (0 picks a free one)"],
      EACCES: ["invalid_argument", "needs privileges; use a port above 1023"],
      EADDRNOTAVAIL: ["invalid_argument", `${listen.host} is not an address of this machine`],
      ENOTFOUND: ["invalid_argument", `${listen.host} does not resolve; use an IP address`],
    };
    const known = code === undefined ? undefined : problem[code];
    if (!known) throw error;
    throw new PyroError(known[0], `cannot listen on ${where}: ${known[1]}`, {
      details: { field: "http", host: listen.host, port: listen.port },
      cause: error,
    });
  }
}

interface RouteContext {
  listen: ListenAddress;
  token: string;
  sessions: Sessions;
}

async function route(req: IncomingMessage, res: ServerResponse, context: RouteContext) {
  const path = new URL(req.url ?? "/", "http://localhost").pathname;
  if (path !== MCP_HTTP_PATH)
    return reply(res, 404, `not found; the MCP endpoint is ${MCP_HTTP_PATH}`);
  const refusal = originRefusal(
    { host: req.headers.host, origin: req.headers.origin },
    context.listen,
  );
  if (refusal) return reply(res, 403, `forbidden: ${refusal} (DNS rebinding protection)`);
  if (!bearerMatches(req.headers.authorization, context.token)) {
    res.setHeader("WWW-Authenticate", 'Bearer realm="pyro"');
    return reply(
      res,
      401,
      "unauthorized: send `Authorization: Bearer <token>` with the token from the server's token file",
    );
  }
  const sessionId = req.headers["mcp-session-id"];
  if (typeof sessionId === "string") {
    const session = context.sessions.get(sessionId);
    if (!session) return reply(res, 404, "session not found; initialize a new session", -32001);
    return session.handle(req, res);
  }
  if (req.method !== "POST") return reply(res, 400, "Mcp-Session-Id header is required");
  if (context.sessions.size >= MAX_SESSIONS) {
    return reply(
      res,
      503,
      `too many sessions (${MAX_SESSIONS}); end one with DELETE or wait for idle ones to time out`,
    );
  }
  await context.sessions.start(req, res);
}

/** The live sessions by id, and the registry of what they created. */
class Sessions {
  private readonly live = new Map<string, HttpSession>();
  private readonly pending = new Set<HttpSession>();
  private readonly registry = new SessionRegistry(async (kind, id) => {
    const pyro = new Pyro();
    if (kind === "vm") await pyro.deleteVm({ vm_id: id });
    else await pyro.deleteWorkspace({ workspace_id: id });
  });

  constructor(private readonly serverOptions: { profile: McpProfile; hostPathRoots: string[] }) {}

  get size(): number {
    return this.live.size + this.pending.size;
  }

  get(id: string): HttpSession | undefined {
    return this.live.get(id);
  }

  /** A new session for a request without a session id; kept only if it was `initialize`. */
  async start(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const session = new HttpSession(this.serverOptions, this.registry, {
      initialized: (s) => {
        this.live.set(s.id as string, s);
        log(`phase=session-start session=${s.id}`);
      },
      ended: (s, reason, errors) => this.ended(s, reason, errors),
    });
    this.pending.add(session);
    try {
      await session.connect();
      await session.handle(req, res);
    } finally {
      this.pending.delete(session);
    }
    if (session.id === undefined) await session.close("not-initialized");
  }

  endIdle(idleMs: number): void {
    const now = Date.now();
    for (const session of this.live.values()) {
      if (session.idleMs(now) >= idleMs) void session.close("idle");
    }
  }

  async endAll(): Promise<void> {
    await Promise.all([...this.live.values()].map((s) => s.close("shutdown")));
  }

  private ended(session: HttpSession, reason: EndReason, errors: Error[]): void {
    if (session.id === undefined) return;
    this.live.delete(session.id);
    const detail = errors.map((e) => e.message).join("; ");
    log(
      `phase=session-end session=${session.id} reason=${reason}` +
        (detail ? ` release_errors=${JSON.stringify(detail)}` : ""),
    );
  }
}

/** A JSON-RPC error body, as the SDK's transport answers its own refusals. */
function reply(res: ServerResponse, status: number, message: string, code = -32000): void {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }));
}

/** Logs go to stderr, like the stdio server's. */
function log(line: string): void {
  process.stderr.write(`[mcp] ${line}\n`);
}
