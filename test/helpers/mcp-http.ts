import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { request, type IncomingHttpHeaders } from "node:http";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { expect } from "vitest";
import { CLI_ENTRY } from "./cli.js";
import { eventually } from "./guest.js";

/** `pyro mcp serve --http` as a subprocess, with what a client needs to reach it. */
export interface HttpServer {
  child: ChildProcess;
  /** `http://127.0.0.1:PORT/mcp`, from the server's `phase=serve` line. */
  url: string;
  token: string;
  stderr: () => string;
  /** SIGTERM, then the exit status (the server ends its sessions first). */
  stop: () => Promise<number | null>;
}

export async function startHttpServer(args: string[] = []): Promise<HttpServer> {
  const child = spawn(
    process.execPath,
    [CLI_ENTRY, "mcp", "serve", "--http", "127.0.0.1:0", ...args],
    { env: process.env, stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const started = await eventually(() => /phase=serve .*\n/.test(stderr), 30_000);
  expect(started, `server did not start: ${stderr}`).toBe(true);
  const url = /url=(\S+)/.exec(stderr)?.[1] as string;
  const tokenFile = JSON.parse(/token_file=("[^"]*")/.exec(stderr)?.[1] as string) as string;
  const token = readFileSync(tokenFile, "utf8").trim();
  const stop = async () => {
    if (child.exitCode !== null) return child.exitCode;
    child.kill("SIGTERM");
    const [code] = (await once(child, "exit")) as [number | null];
    return code;
  };
  return { child, url, token, stderr: () => stderr, stop };
}

/** A real SDK client over Streamable HTTP, sending `token` as its bearer token. */
export async function httpClient(
  server: { url: string; token: string },
  token = server.token,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(server.url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: "pyro-http-test", version: "0" });
  await client.connect(transport);
  return { client, transport };
}

/** Calls a tool that must succeed, and returns its structured result. */
export async function callOk(client: Client, name: string, args: Record<string, unknown>) {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const text = result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
  expect(result.isError, `${name}: ${text}`).toBeFalsy();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- payloads are checked by matchers
  return result.structuredContent as Record<string, any>;
}

/** A raw JSON-RPC `initialize` request, as a client without the SDK sends it. */
export const INITIALIZE_REQUEST = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "raw", version: "0" },
  },
};

/**
 * A raw POST of an `initialize` request with exactly `headers` (node:http, since fetch
 * will not send a forged Host), for the refusal cases the SDK client hides.
 */
export function rawInitialize(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  const body = JSON.stringify(INITIALIZE_REQUEST);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json, text/event-stream",
          ...headers,
        },
      },
      (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk.toString()));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
