import { afterEach, describe, expect, it } from "vitest";
import { FrameType } from "../../src/guest/frame.js";
import { readManifest } from "../../src/guest/files.js";
import { fakeAgentClient, type AgentScript } from "../helpers/fake-agent.js";

/**
 * readManifest against a scripted (hostile) agent on a real socket: every line is parsed
 * with its schema, and the host's own bounds hold whatever the guest claims.
 */

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

const HASH = "a".repeat(64);
const line = (path: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    path,
    artifact_type: "file",
    size_bytes: 1,
    mode: 0o644,
    sha256: HASH,
    link_target: null,
    ...extra,
  });

/** An agent that streams `lines` and then answers with `result`. */
async function agentSending(lines: string[], result: Record<string, unknown> = {}) {
  const script: AgentScript = async (call) => {
    if (lines.length) await call.output(FrameType.stdout, Buffer.from(`${lines.join("\n")}\n`));
    call.reply({
      type: "result",
      path: ".",
      count: lines.length,
      truncated: false,
      hashed_bytes: 0,
      ...result,
    });
  };
  const connected = await fakeAgentClient(script, { defaultDeadlineMs: 5_000 });
  cleanups.push(connected.close);
  return connected.client;
}

const ask = { root: "/workspace", path: ".", max_entries: 3, max_bytes: 100 };

describe("readManifest from a hostile agent", () => {
  it("parses an honest manifest", async () => {
    const client = await agentSending([line("a"), line("b", { mode: 0o755 })]);
    const manifest = await readManifest(client, ask);
    expect(manifest.lines.map((l) => [l.path, l.mode])).toEqual([
      ["a", 0o644],
      ["b", 0o755],
    ]);
  });

  it.each([
    ["more lines than max_entries", [line("a"), line("b"), line("c"), line("d")], {}],
    ["more hashed bytes than max_bytes", [line("a")], { hashed_bytes: 101 }],
    ["a hash that is not 64 hex digits", [line("a", { sha256: "00" })], {}],
    ["an uppercase hash", [line("a", { sha256: HASH.toUpperCase() })], {}],
    ["a mode beyond 0o7777", [line("a", { mode: 0o170000 })], {}],
    ["a field of its own", [line("a", { owner: "root" })], {}],
    ["a line that is not JSON", ["{not json"], {}],
  ])("refuses %s", async (_name, lines, result) => {
    const client = await agentSending(lines, result);
    await expect(readManifest(client, ask)).rejects.toMatchObject({ code: "guest_error" });
  });
});
