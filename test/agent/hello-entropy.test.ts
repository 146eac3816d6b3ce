import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChannelClient } from "../../src/guest/client.js";
import { AGENT_OPS } from "../../src/guest/ops/index.js";
import { helloEntropy } from "../../src/guest/ops/system.js";
import { HostAgent, startAgentClient, stopAgentClient } from "../helpers/agent.js";

/**
 * hello's `entropy` (64 bytes, base64) against the real agent binary: the agent takes
 * exactly 64 canonical base64 bytes and refuses anything else before doing anything, and
 * the host's schema refuses the same before sending. As a host process the agent only
 * validates; the reseed itself (RNDADDENTROPY + RNDRESEEDCRNG) needs a guest.
 */

let agent: HostAgent;
let client: ChannelClient;

beforeAll(async () => ({ agent, client } = await startAgentClient()), 120_000);
afterAll(() => stopAgentClient(agent, client));

const BAD_ENTROPY: [string, unknown][] = [
  ["63 bytes", randomBytes(63).toString("base64")],
  ["65 bytes", randomBytes(65).toString("base64")],
  ["no bytes", ""],
  ["unpadded", randomBytes(64).toString("base64").replace(/=+$/, "")],
  ["the URL-safe alphabet", Buffer.alloc(64, 0xfb).toString("base64url") + "=="],
  ["non-zero pad bits", randomBytes(64).toString("base64").slice(0, 85) + "B=="],
  ["a number", 64],
  ["null", null],
];

describe("hello entropy", () => {
  it("accepts 64 fresh bytes and still answers hello", async () => {
    const entropy = helloEntropy();
    expect(Buffer.from(entropy, "base64")).toHaveLength(64);
    const hello = await client.request(AGENT_OPS.hello, { entropy, time_ms: Date.now() });
    expect(hello).toMatchObject({ type: "result", protocol: 1 });
  });

  it.each(BAD_ENTROPY)("the agent refuses %s as invalid_argument", async (_, entropy) => {
    await expect(client.request({ op: "hello", entropy })).rejects.toMatchObject({
      code: "invalid_argument",
      details: { guest_code: "invalid_argument" },
      message: expect.stringMatching(/^hello: entropy must be 64 bytes in base64/),
    });
  });

  it.each(BAD_ENTROPY)("the host's schema refuses %s before sending", (_, entropy) => {
    expect(AGENT_OPS.hello.request.safeParse({ entropy }).success).toBe(false);
  });

  it("refuses bad entropy without applying the rest of the request", async () => {
    const refused = client.request({
      op: "hello",
      entropy: "AAAA",
      workspace_root: "/made-by-a-refused-hello",
    });
    await expect(refused).rejects.toMatchObject({ code: "invalid_argument" });
    const listed = await client.exec({ argv: ["ls", agent.root] });
    expect(listed.stdout.toString()).not.toContain("made-by-a-refused-hello");
  });
});
