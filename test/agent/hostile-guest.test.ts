import { execFileSync } from "node:child_process";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostAgent } from "../helpers/agent.js";
import { AgentWire } from "./wire.js";

/**
 * The agent against what a hostile guest process can do to it: files planted where the
 * agent writes logs, and what a service or shell inherits from the agent. The agent runs
 * as a host process (--root), so the test reads /proc of its children directly.
 */

let agent: HostAgent;
let wire: AgentWire;

beforeAll(async () => {
  agent = await HostAgent.start();
  wire = await AgentWire.connect(agent.socketPath);
}, 120_000);

afterAll(async () => {
  await wire?.close();
  await agent?.stop();
});

describe("the agent against a hostile guest", () => {
  it("refuses a FIFO planted at a service's log name instead of blocking on it", async () => {
    const logDir = join(agent.root, "fifo-logs");
    await mkdir(logDir);
    execFileSync("mkfifo", [join(logDir, "trap.stdout")]);
    // A blocking open of a FIFO with no reader never returns: the agent would hang.
    const { reply } = await wire.request(
      { op: "service_start", name: "trap", argv: ["true"], log_dir: "/fifo-logs" },
      5_000,
    );
    expect(reply).toMatchObject({ type: "error", code: "invalid_argument" });
    expect(String(reply.message)).toMatch(/trap\.stdout.*not a regular file/);
    expect((await wire.result({ op: "service_list" })).services).toEqual([]);
  });

  it("refuses a link planted at a service's log name and leaves its target alone", async () => {
    const logDir = join(agent.root, "link-logs");
    const target = join(agent.root, "precious");
    await mkdir(logDir);
    await writeFile(target, "keep me\n");
    await symlink(target, join(logDir, "bait.stderr"));
    const { reply } = await wire.request(
      {
        op: "service_start",
        name: "bait",
        argv: ["sh", "-c", "echo gotcha >&2"],
        log_dir: "/link-logs",
      },
      5_000,
    );
    expect(reply).toMatchObject({ type: "error", code: "invalid_argument" });
    expect(String(reply.message)).toMatch(/bait\.stderr.*not a regular file/);
    expect(await readFile(target, "utf8")).toBe("keep me\n");
  });
});
