import { randomBytes } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
// The server module itself: the SDK entry loads it with require(), which vitest cannot serve.
import { createServer } from "../../src/mcp/server.js";
import { base64Forms } from "../../src/secrets/forms.js";
import { eventually, processesMentioning } from "../helpers/guest.js";
import { HOST_ENVIRONMENT, hostTierHome } from "../helpers/host.js";

/**
 * Live output of a workspace with a secret (real shim and agent, host-process VMM): the
 * chunks a callback or a progress notification carries are redacted like the result, a
 * value written in two halves included, and lines that are no secret still arrive while
 * the command runs. Order, not timing: the command waits for files the test creates only
 * once it has seen what it waits for.
 */
const home = hostTierHome();
const pyro = new Pyro();
const TOKEN = `live-${randomBytes(12).toString("hex")}`;
let workspace_id = "";
let client: Client;

/** Every form of the value a leak could take: the value, its halves, its base64 forms. */
const leaks = (text: string) =>
  [TOKEN, TOKEN.slice(0, 12), TOKEN.slice(12), ...base64Forms(Buffer.from(TOKEN)).map(String)]
    .filter((form) => text.replace(/\n/g, "").includes(form))
    .map((form) => form.slice(0, 6));

/**
 * Prints `first`, waits for `<tag>.go`; prints the secret in two halves a moment apart,
 * then its base64 form and `shown`; waits for `<tag>.done`; prints `last`.
 */
const script = (tag: string) => [
  "sh",
  "-c",
  [
    "echo first",
    `while [ ! -e ${tag}.go ]; do sleep 0.05; done`,
    `printf %s "$(echo "$TOKEN" | cut -c1-12)"`,
    "sleep 0.3",
    `echo "$(echo "$TOKEN" | cut -c13-)"`,
    `printf %s "$TOKEN" | base64`,
    "echo shown",
    `while [ ! -e ${tag}.done ]; do sleep 0.05; done`,
    "echo last",
  ].join("; "),
];
const touch = (name: string) =>
  pyro.execWorkspace({ workspace_id, command: ["touch", name] }).then((r) => {
    expect(r.exit_code).toBe(0);
  });

beforeAll(async () => {
  workspace_id = (
    await pyro.createWorkspace({
      environment: HOST_ENVIRONMENT,
      secrets: [{ name: "TOKEN", value: TOKEN }],
    })
  ).workspace_id;
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await createServer({ profile: "workspace-full" }).connect(serverSide);
  client = new Client({ name: "pyro-live-output-secrets-test", version: "0" });
  await client.connect(clientSide);
});

afterAll(async () => {
  await client?.close();
  if (workspace_id) await pyro.deleteWorkspace({ workspace_id }).catch(() => {});
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

describe("live output of a workspace with secrets", () => {
  it("SDK callbacks get redacted chunks, and lines without secrets while the command runs", async () => {
    let streamed = "";
    const pending: Promise<void>[] = [];
    const result = await pyro.execWorkspace(
      {
        workspace_id,
        command: script("sdk"),
        secret_env: { TOKEN: "TOKEN" },
        timeout_seconds: 20,
      },
      {
        onStdout: (chunk) => {
          streamed += chunk.toString();
          if (pending.length === 0 && streamed.includes("first\n")) pending.push(touch("sdk.go"));
          if (pending.length === 1 && streamed.includes("shown\n")) pending.push(touch("sdk.done"));
        },
      },
    );
    await Promise.all(pending);
    expect(result).toMatchObject({ exit_code: 0, timed_out: false });
    expect(result.stdout).toMatch(/^first\n\[REDACTED:TOKEN\]\n.*\nshown\nlast\n$/s);
    expect(streamed).toBe(result.stdout);
    expect(leaks(streamed)).toEqual([]);
  });

  it("MCP progress messages are redacted like the result", async () => {
    const messages: string[] = [];
    const pending: Promise<void>[] = [];
    const result = (await client.callTool(
      {
        name: "workspace_exec",
        arguments: {
          workspace_id,
          command: script("mcp"),
          secret_env: { TOKEN: "TOKEN" },
          timeout_seconds: 20,
        },
      },
      undefined,
      {
        onprogress: ({ message = "" }) => {
          messages.push(message);
          const seen = messages.join("\n");
          if (pending.length === 0 && seen.includes("first")) pending.push(touch("mcp.go"));
          if (pending.length === 1 && seen.includes("shown")) pending.push(touch("mcp.done"));
        },
      },
    )) as CallToolResult;
    await Promise.all(pending);
    const stdout = (result.structuredContent as { stdout: string }).stdout;
    expect(stdout).toMatch(/^first\n\[REDACTED:TOKEN\]\n.*\nshown\nlast\n$/s);
    expect(messages.join("\n")).toContain("[REDACTED:TOKEN]");
    expect(leaks(messages.join("\n"))).toEqual([]);
    expect(leaks(JSON.stringify(result))).toEqual([]);
  });
});
