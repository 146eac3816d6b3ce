import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { CreateServerOptions } from "./server.js";
import { createScopedServer } from "./server.js";
import type { SessionRegistry, SessionScope } from "./session-scope.js";
import { BoundedEventStore } from "./http-events.js";

/** What the server suggests in SSE `retry`: soon, since a running call may be finishing. */
const RECONNECT_AFTER_MS = 1000;

/** Why a session ended, for the log line. */
export type EndReason = "client" | "idle" | "shutdown" | "not-initialized";

export interface SessionHooks {
  /** The transport gave the session its id (the client's `initialize` succeeded). */
  initialized: (session: HttpSession) => void;
  /** The session is over and its VMs and workspaces have been released. */
  ended: (session: HttpSession, reason: EndReason, errors: Error[]) => void;
}

/**
 * One MCP session over HTTP: its own SDK transport and server (an SDK server serves one
 * transport), and its scope of VMs and workspaces. It counts its open HTTP requests, so
 * a session with a tool call in flight or a notification stream open is never idle.
 */
export class HttpSession {
  readonly transport: StreamableHTTPServerTransport;
  private readonly server: McpServer;
  private readonly scope: SessionScope;
  private openRequests = 0;
  private lastActiveMs = Date.now();
  private endReason: EndReason = "client";
  private ending: Promise<void> | undefined;

  constructor(
    serverOptions: CreateServerOptions,
    registry: SessionRegistry,
    private readonly hooks: SessionHooks,
  ) {
    this.scope = registry.open();
    this.transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: () => hooks.initialized(this),
      // Resumable streams: a dropped connection loses no result (src/mcp/http-events.ts);
      // `retry` tells the client how soon to reconnect.
      eventStore: new BoundedEventStore(),
      retryInterval: RECONNECT_AFTER_MS,
    });
    this.server = createScopedServer(serverOptions, this.scope);
    // Closing the transport (the client's DELETE, or close() below) aborts the calls in
    // flight (a vm_run's VM is deleted by its cancellation) and then ends the session.
    this.server.server.onclose = () => void this.finish();
  }

  get id(): string | undefined {
    return this.transport.sessionId;
  }

  async connect(): Promise<void> {
    await this.server.connect(this.transport);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.openRequests += 1;
    this.lastActiveMs = Date.now();
    res.once("close", () => {
      this.openRequests -= 1;
      this.lastActiveMs = Date.now();
    });
    await this.transport.handleRequest(req, res);
  }

  /**
   * How long the session has had no request open and no tool call running, in
   * milliseconds (a call goes on when the client's stream dropped; it may reconnect).
   */
  idleMs(now = Date.now()): number {
    if (this.openRequests > 0 || this.scope.callsInFlight > 0) return 0;
    return now - Math.max(this.lastActiveMs, this.scope.lastCallEndMs);
  }

  /** Ends the session and resolves once what it held has been released. */
  close(reason: EndReason): Promise<void> {
    if (!this.ending) this.endReason = reason;
    this.server.close().catch(() => {});
    return this.finish();
  }

  private finish(): Promise<void> {
    this.ending ??= this.scope.end().then((errors) => {
      this.hooks.ended(this, this.endReason, errors);
    });
    return this.ending;
  }
}
