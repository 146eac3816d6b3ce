import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeControl, FRAME_HEADER_BYTES, MAX_PAYLOAD_BYTES } from "../../src/guest/frame.js";
import type { ChannelClient } from "../../src/guest/client.js";
import { HostAgent } from "../helpers/agent.js";

let agent: HostAgent;
let client: ChannelClient;

beforeAll(async () => {
  agent = await HostAgent.start();
  client = await agent.connect();
}, 120_000);

afterAll(async () => {
  client?.destroy();
  await agent?.stop();
});

describe("guest agent as a host process", () => {
  it("answers hello with its protocol and version", async () => {
    const hello = await client.hello();
    expect(hello.protocol).toBe(1);
    expect(hello.pid1).toBe(false);
    expect(hello.agent_version).toMatch(/^0\.1\.0\+[0-9a-f]{12}$/);
  });

  it("keeps stdout and stderr apart and reports the exit code", async () => {
    const r = await client.exec({ argv: ["sh", "-c", "echo out; echo err >&2; exit 3"] });
    expect(r.stdout.toString()).toBe("out\n");
    expect(r.stderr.toString()).toBe("err\n");
    expect(r.exit_code).toBe(3);
    expect(r.timed_out).toBe(false);
  });

  it("applies env over the defaults and runs in the requested cwd under the root", async () => {
    await mkdir(join(agent.root, "work"), { recursive: true });
    const r = await client.exec({
      argv: ["sh", "-c", 'echo "$GREETING $HOME"; pwd'],
      env: { GREETING: "hi" },
      cwd: "/work",
    });
    expect(r.stdout.toString()).toBe(`hi /root\n${join(agent.root, "work")}\n`);
  });

  it("refuses a cwd that does not exist", async () => {
    await expect(client.exec({ argv: ["true"], cwd: "/missing" })).rejects.toMatchObject({
      code: "not_found",
    });
  });

  it("exits 127 with the agent's message for an unknown command", async () => {
    const r = await client.exec({ argv: ["no-such-command-pyro"] });
    expect(r.exit_code).toBe(127);
    expect(r.stderr.toString()).toMatch(/no-such-command-pyro/);
  });

  it("kills the whole process group on timeout", async () => {
    const started = Date.now();
    const r = await client.exec({ argv: ["sh", "-c", "sleep 30 & sleep 30"], timeout_ms: 300 });
    expect(r.timed_out).toBe(true);
    expect(r.exit_code).toBeNull();
    expect(r.signal).toBe("KILL");
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("truncates output beyond the bound and still counts it", async () => {
    const r = await client.exec({ argv: ["head", "-c", "5000000", "/dev/zero"], max_output_bytes: 1000 });
    expect(r.stdout.length).toBe(1000);
    expect(r.stdout_truncated).toBe(true);
    expect(r.stdout_bytes).toBe(5_000_000);
    expect(r.exit_code).toBe(0);
  });

  it("runs many commands at once on separate channels", async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => client.exec({ argv: ["sh", "-c", `sleep 0.2; echo ${i}`] })),
    );
    expect(results.map((r) => r.stdout.toString())).toEqual(
      Array.from({ length: 8 }, (_, i) => `${i}\n`),
    );
  });

  it("answers malformed requests with invalid_argument and keeps serving", async () => {
    await expect(client.request({ op: "exec", argv: [] })).rejects.toMatchObject({
      code: "invalid_argument",
    });
    await expect(client.request({ op: "launch-missiles" })).rejects.toMatchObject({
      code: "invalid_argument",
    });
    expect((await client.exec({ argv: ["true"] })).exit_code).toBe(0);
  });

  it("drops a client that sends an oversized frame, then serves the next one", async () => {
    client.destroy(); // the host-mode agent serves one client at a time
    const raw = (await agent.rawSocket())!;
    const closed = new Promise((resolve) => raw.once("close", resolve));
    const header = Buffer.alloc(FRAME_HEADER_BYTES);
    header.writeUInt32LE(MAX_PAYLOAD_BYTES + 1, 0);
    header.writeUInt32LE(1, 4);
    header.writeUInt8(1, 8);
    raw.write(Buffer.concat([header, encodeControl(2, { op: "hello" })]));
    await closed;
    const next = await agent.connect();
    expect((await next.hello()).protocol).toBe(1);
    next.destroy();
  });
});
