import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChannelClient } from "../../src/guest/client.js";
import { AGENT_OPS } from "../../src/guest/ops/index.js";
import { readShellOutput } from "../../src/guest/shells.js";
import { HostAgent, startAgentClient, stopAgentClient } from "../helpers/agent.js";

/**
 * The host's shell op schemas (src/guest/ops/shells.ts) against the real agent binary:
 * what the agent really answers parses with them. The agent's own shell behaviour is
 * tested frame by frame in shell.test.ts.
 */

let agent: HostAgent;
let client: ChannelClient;

beforeAll(async () => ({ agent, client } = await startAgentClient()), 120_000);
afterAll(() => stopAgentClient(agent, client));

/** Reads from 0 until the output contains `text`, following next_cursor (cursors checked). */
async function readUntil(shellId: string, text: string) {
  let cursor = 0;
  let seen = "";
  for (let attempt = 0; attempt < 500 && !seen.includes(text); attempt++) {
    const read = await readShellOutput(client, { shell_id: shellId, cursor });
    seen += read.data.toString();
    cursor = read.next_cursor;
    if (!seen.includes(text)) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { seen, cursor };
}

describe("typed shell ops against the real agent", () => {
  it("open, write, read, signal, list and close a shell with parsed replies", async () => {
    const opened = await client.request(AGENT_OPS.shell_open, {
      shell_id: "sh-typed",
      argv: ["sh"],
      cols: 80,
      rows: 24,
    });
    expect(opened).toMatchObject({ shell_id: "sh-typed" });
    const written = await client.request(AGENT_OPS.shell_write, {
      shell_id: "sh-typed",
      data: "echo typed-$((40+2))\n",
    });
    expect(written.bytes_written).toBe(21);
    expect((await readUntil("sh-typed", "typed-42")).seen).toContain("typed-42");
    await client.request(AGENT_OPS.shell_signal, { shell_id: "sh-typed", signal: "INT" });
    const { shells } = await client.request(AGENT_OPS.shell_list, {});
    expect(shells).toContainEqual(
      expect.objectContaining({ shell_id: "sh-typed", cols: 80, rows: 24, state: "running" }),
    );
    await expect(
      client.request(AGENT_OPS.shell_close, { shell_id: "sh-typed" }),
    ).resolves.toMatchObject({ closed: true });
    await expect(
      client.request(AGENT_OPS.shell_read, { shell_id: "sh-typed", cursor: 0 }),
    ).rejects.toMatchObject({ code: "not_found" });
  });
});
