import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChannelClient } from "../../src/guest/client.js";
import { AGENT_OPS } from "../../src/guest/ops/index.js";
import { HostAgent, startAgentClient, stopAgentClient } from "../helpers/agent.js";

/**
 * The host's op schemas (src/guest/ops) against the real agent binary: what the agent
 * really answers parses with them, and its error codes reach the caller through the one
 * error table. The agent's own behaviour is tested raw in services.test.ts.
 */

let agent: HostAgent;
let client: ChannelClient;

beforeAll(async () => ({ agent, client } = await startAgentClient()), 120_000);
afterAll(() => stopAgentClient(agent, client));

describe("typed ops against the real agent", () => {
  it("start, list, read logs of and stop a service with parsed replies", async () => {
    const started = await client.request(AGENT_OPS.service_start, {
      name: "typed",
      argv: ["sh", "-c", "echo out; echo err >&2; exec sleep 100"],
      log_dir: "/logs",
    });
    expect(started).toMatchObject({ type: "result", name: "typed" });
    expect(started.pid).toBeGreaterThan(0);
    const { services } = await client.request(AGENT_OPS.service_list, {});
    expect(services).toContainEqual(
      expect.objectContaining({ name: "typed", state: "running", pid: started.pid }),
    );
    let logs;
    for (let attempt = 0; attempt < 200; attempt++) {
      logs = await client.requestWithOutput(AGENT_OPS.service_logs, { name: "typed" });
      if (logs.stderr.length) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect([logs?.stdout.toString(), logs?.stderr.toString()]).toEqual(["out\n", "err\n"]);
    const stopped = await client.request(AGENT_OPS.service_stop, { name: "typed", grace_ms: 2000 });
    expect(stopped).toMatchObject({ state: "exited", signal: "TERM", killed: false });
  });

  it("turns the agent's busy, not_found and unsupported into the host's codes", async () => {
    const argv = ["sleep", "100"];
    await client.request(AGENT_OPS.service_start, { name: "twice", argv, log_dir: "/logs" });
    await expect(
      client.request(AGENT_OPS.service_start, { name: "twice", argv, log_dir: "/logs" }),
    ).rejects.toMatchObject({ code: "busy", message: expect.stringMatching(/twice/) });
    await client.request(AGENT_OPS.service_stop, { name: "twice", grace_ms: 0 });
    await expect(client.request(AGENT_OPS.service_logs, { name: "nope" })).rejects.toMatchObject({
      code: "not_found",
    });
    await expect(client.request({ op: "launch-missiles" })).rejects.toMatchObject({
      code: "unsupported",
      message: expect.stringMatching(/unknown op "launch-missiles": .*rebuild the environment/),
    });
  });
});
