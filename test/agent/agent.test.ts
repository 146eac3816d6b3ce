import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeControl, FRAME_HEADER_BYTES, MAX_PAYLOAD_BYTES } from "../../src/guest/frame.js";
import type { ChannelClient } from "../../src/guest/client.js";
import { HostAgent, processAlive, startAgentClient, stopAgentClient } from "../helpers/agent.js";
import { eventually } from "../helpers/guest.js";

let agent: HostAgent;
let client: ChannelClient;

beforeAll(async () => ({ agent, client } = await startAgentClient()), 120_000);
afterAll(() => stopAgentClient(agent, client));

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

  it("kills the whole process group on timeout: the background child is gone", async () => {
    // The drain reports the exit shortly after the leader dies whatever happens to the
    // rest of the group, so only the background child's pid proves the group was killed.
    const r = await client.exec({
      argv: ["sh", "-c", "sleep 30 & echo $!; sleep 30"],
      timeout_ms: 300,
    });
    expect(r.timed_out).toBe(true);
    expect(r.exit_code).toBeNull();
    expect(r.signal).toBe("KILL");
    const child = Number(r.stdout.toString().trim());
    expect(child).toBeGreaterThan(1);
    expect(await eventually(() => !processAlive(child))).toBe(true);
  });

  it("truncates output beyond the bound and still counts it", async () => {
    const r = await client.exec({
      argv: ["head", "-c", "5000000", "/dev/zero"],
      max_output_bytes: 1000,
    });
    expect(r.stdout.length).toBe(1000);
    expect(r.stdout_truncated).toBe(true);
    expect(r.stdout_bytes).toBe(5_000_000);
    expect(r.exit_code).toBe(0);
  });

  it("runs many commands at once on separate channels: they overlap", async () => {
    // Each command marks itself started and waits until all 8 have, then prints its start
    // and end stamps. Had they run one after another, none would see 8 and the first
    // would end before the last started.
    const barrier = join(agent.root, "barrier");
    await mkdir(barrier);
    const script =
      `date +%s%N; touch ${barrier}/$0; n=0; ` +
      `while [ "$(ls ${barrier} | wc -l)" -lt 8 ] && [ $n -lt 400 ]; ` +
      `do sleep 0.05; n=$((n+1)); done; ls ${barrier} | wc -l; date +%s%N`;
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => client.exec({ argv: ["sh", "-c", script, String(i)] })),
    );
    const lines = results.map((r) => r.stdout.toString().trim().split("\n"));
    expect(lines.map((l) => l[1])).toEqual(Array(8).fill("8"));
    const starts = lines.map((l) => BigInt(l[0]!));
    const ends = lines.map((l) => BigInt(l[2]!));
    const lastStart = starts.reduce((a, b) => (a > b ? a : b));
    const firstEnd = ends.reduce((a, b) => (a < b ? a : b));
    expect(lastStart < firstEnd).toBe(true);
  }, 60_000);

  it("answers malformed requests with invalid_argument and keeps serving", async () => {
    await expect(client.request({ op: "exec", argv: [] })).rejects.toMatchObject({
      code: "invalid_argument",
    });
    // An unknown op is `unsupported` on the wire (asserted raw in services.test.ts); the
    // host's mapping of that code is not this file's business.
    await expect(client.request({ op: "launch-missiles" })).rejects.toThrow(
      /unknown op "launch-missiles"/,
    );
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
