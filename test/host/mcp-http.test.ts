import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBearerProxy } from "../helpers/bearer-proxy.js";
import { runCli } from "../helpers/cli.js";
import { eventually, processesMentioning } from "../helpers/guest.js";
import { HOST_ENVIRONMENT, hostTierHome } from "../helpers/host.js";
import {
  callOk,
  httpClient,
  rawInitialize,
  startHttpServer,
  type HttpServer,
} from "../helpers/mcp-http.js";

// `pyro mcp serve --http` as a subprocess with real SDK clients, over the host-process
// driver: authentication, the DNS-rebinding check, session isolation and what a session
// leaves behind. test/surface/mcp-http.test.ts runs a real VM and the conformance suite.
const home = hostTierHome();
let server: HttpServer;
/** A connection that never sends a byte, opened first and checked last (it takes ~30 s). */
let silentClosed = false;

beforeAll(async () => {
  server = await startHttpServer(["--profile", "workspace-full"]);
  const silent = connect(Number(new URL(server.url).port), "127.0.0.1");
  silent.on("error", () => {});
  silent.on("close", () => (silentClosed = true));
});

afterAll(async () => {
  await server.stop();
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

/** The server logged the end of the session, which it does once its releases are done. */
const ended = (id: string | undefined) =>
  eventually(() => server.stderr().includes(`phase=session-end session=${id} `));

const workspaceExists = (id: string) => existsSync(join(home, "workspaces", id));
const vmExists = (id: string) => existsSync(join(home, "vms", id));
const workspaceIds = () =>
  existsSync(join(home, "workspaces")) ? readdirSync(join(home, "workspaces")) : [];

describe("pyro mcp serve --http: authentication and Origin", () => {
  it("answers 401 without the bearer token or with a wrong one", async () => {
    const none = await rawInitialize(server.url, {});
    expect(none.status).toBe(401);
    expect(none.headers["www-authenticate"]).toMatch(/^Bearer/);
    const wrong = await rawInitialize(server.url, { Authorization: `Bearer ${"x".repeat(43)}` });
    expect(wrong.status).toBe(401);
    await expect(httpClient(server, "not-the-token-at-all")).rejects.toMatchObject({ code: 401 });
    const right = await rawInitialize(server.url, { Authorization: `Bearer ${server.token}` });
    expect(right.status).toBe(200);
  });

  it("a port in use is a conflict that says to pick another", async () => {
    const taken = new URL(server.url).port;
    const result = await runCli(["mcp", "serve", "--http", `127.0.0.1:${taken}`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/\[conflict\].*in use; pick another --http port/);
  });

  it("the token file is generated under PYRO_HOME with mode 0600", async () => {
    const { statSync } = await import("node:fs");
    expect(statSync(join(home, "mcp-http.token")).mode & 0o777).toBe(0o600);
  });

  it("answers 403 to a foreign Origin or Host, even with the token", async () => {
    const auth = { Authorization: `Bearer ${server.token}` };
    const origin = await rawInitialize(server.url, { ...auth, Origin: "http://evil.example" });
    expect(origin.status).toBe(403);
    expect(origin.body).toMatch(/Origin/);
    const host = await rawInitialize(server.url, { ...auth, Host: "evil.example:80" });
    expect(host.status).toBe(403);
    const local = await rawInitialize(server.url, { ...auth, Origin: "http://localhost:5173" });
    expect(local.status).toBe(200);
  });
});

describe("pyro mcp serve --http: sessions", () => {
  it("a session lists only its own workspaces; its end deletes them and its VMs", async () => {
    const a = await httpClient(server);
    const b = await httpClient(server);
    const ws = await callOk(a.client, "workspace_create", { environment: HOST_ENVIRONMENT });
    const workspace_id = ws.workspace_id as string;
    const vm = await callOk(a.client, "vm_create", { environment: HOST_ENVIRONMENT });
    const vm_id = vm.vm_id as string;
    await callOk(a.client, "vm_start", { vm_id });
    const ids = async (client: typeof a.client) =>
      ((await callOk(client, "workspace_list", {})).workspaces as { workspace_id: string }[]).map(
        (w) => w.workspace_id,
      );
    expect(await ids(a.client)).toEqual([workspace_id]);
    expect(await ids(b.client)).toEqual([]);
    const sessionA = a.transport.sessionId;
    await a.transport.terminateSession();
    expect(await ended(sessionA)).toBe(true);
    expect(server.stderr()).toContain(`session=${sessionA} reason=client`);
    expect(workspaceExists(workspace_id) || vmExists(vm_id)).toBe(false);
    await b.transport.terminateSession();
  });

  it("a workspace another session used is handed off: it lives until that session ends", async () => {
    const a = await httpClient(server);
    const b = await httpClient(server);
    const ws = await callOk(a.client, "workspace_create", { environment: HOST_ENVIRONMENT });
    const workspace_id = ws.workspace_id as string;
    const exec = await callOk(b.client, "workspace_exec", {
      workspace_id,
      command: ["sh", "-c", "echo handed-off"],
    });
    expect(exec.stdout).toBe("handed-off\n");
    const sessionA = a.transport.sessionId;
    await a.transport.terminateSession();
    expect(await ended(sessionA)).toBe(true);
    expect(workspaceExists(workspace_id)).toBe(true);
    await b.transport.terminateSession();
    expect(await eventually(() => !workspaceExists(workspace_id))).toBe(true);
  });

  it("a workspace made with the CLI is never deleted by a session that used it", async () => {
    const made = await runCli(["workspace", "create", HOST_ENVIRONMENT, "--id-only"]);
    expect(made.code, made.stderr).toBe(0);
    const workspace_id = made.stdout.trim();
    const a = await httpClient(server);
    await callOk(a.client, "workspace_status", { workspace_id });
    const sessionA = a.transport.sessionId;
    await a.transport.terminateSession();
    expect(await ended(sessionA)).toBe(true);
    expect(workspaceExists(workspace_id)).toBe(true);
    expect((await runCli(["workspace", "delete", workspace_id])).code).toBe(0);
  });
});

describe("pyro mcp serve --http: resumable streams", () => {
  it("a call whose connection drops mid-way delivers its result after the client reconnects", async () => {
    const proxy = await startBearerProxy(server.url, server.token);
    try {
      const { client, transport } = await httpClient({ url: proxy.url, token: server.token });
      const ws = await callOk(client, "workspace_create", { environment: HOST_ENVIRONMENT });
      const tree = join(home, "workspaces", ws.workspace_id as string, "host-root", "workspace");
      const call = callOk(client, "workspace_exec", {
        workspace_id: ws.workspace_id,
        command: [
          "sh",
          "-c",
          "touch started; while [ ! -e go ]; do sleep 0.1; done; echo finished",
        ],
      });
      expect(await eventually(() => existsSync(join(tree, "started")))).toBe(true);
      proxy.cut();
      writeFileSync(join(tree, "go"), "");
      expect(await call).toMatchObject({ exit_code: 0, stdout: "finished\n" });
      // The result came over a reconnection that resumed after the last event seen.
      expect(proxy.requests.some((r) => r.method === "GET" && r["last-event-id"])).toBe(true);
      await callOk(client, "workspace_delete", { workspace_id: ws.workspace_id });
      await transport.terminateSession();
    } finally {
      await proxy.close();
    }
  });
});

describe("pyro mcp serve --http: sessions that end without saying so", () => {
  it("an idle session times out and its workspace is deleted", async () => {
    const idle = await startHttpServer([
      "--profile",
      "workspace-full",
      "--session-idle-seconds",
      "1",
    ]);
    try {
      const a = await httpClient(idle);
      const ws = await callOk(a.client, "workspace_create", { environment: HOST_ENVIRONMENT });
      const workspace_id = ws.workspace_id as string;
      // The client is simply gone: no DELETE, no open stream.
      await a.client.close();
      expect(await eventually(() => !workspaceExists(workspace_id), 30_000)).toBe(true);
      expect(await eventually(() => /reason=idle/.test(idle.stderr()))).toBe(true);
      const stale = await fetch(idle.url, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${idle.token}`,
          "Mcp-Session-Id": String(a.transport.sessionId),
          "Content-Type": "application/json",
          Accept: "application/json, text/event-stream",
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
      });
      expect(stale.status).toBe(404);
    } finally {
      await idle.stop();
    }
  });

  it("stopping the server ends every session and deletes what they made first", async () => {
    const other = await startHttpServer(["--profile", "workspace-full"]);
    const a = await httpClient(other);
    const ws = await callOk(a.client, "workspace_create", { environment: HOST_ENVIRONMENT });
    expect(workspaceExists(ws.workspace_id as string)).toBe(true);
    expect(await other.stop()).toBe(128 + 15);
    expect(workspaceExists(ws.workspace_id as string)).toBe(false);
    await a.client.close();
  });

  it("stopping the server while a workspace_create is booting deletes that workspace too", async () => {
    const other = await startHttpServer(["--profile", "workspace-full"]);
    const before = new Set(workspaceIds());
    const a = await httpClient(other);
    const call = a.client
      .callTool({ name: "workspace_create", arguments: { environment: HOST_ENVIRONMENT } })
      .catch(() => undefined);
    // Its directory exists as soon as the creation started; the boot takes longer.
    expect(await eventually(() => workspaceIds().some((id) => !before.has(id)))).toBe(true);
    const made = workspaceIds().find((id) => !before.has(id)) as string;
    expect(await other.stop()).toBe(128 + 15);
    expect(workspaceExists(made)).toBe(false);
    expect(processesMentioning(join(home, "workspaces", made))).toEqual([]);
    await a.client.close();
    await call;
  });
});

describe("pyro mcp serve --http: connections that never send a request", () => {
  it("are closed, so nobody reaching the port can hold file descriptors without a token", async () => {
    expect(await eventually(() => silentClosed, 55_000)).toBe(true);
  });
});
