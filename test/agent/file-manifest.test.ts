import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChannelClient } from "../../src/guest/client.js";
import { readManifest } from "../../src/guest/files.js";
import { AGENT_OPS } from "../../src/guest/ops/index.js";
import { HostAgent, startAgentClient, stopAgentClient } from "../helpers/agent.js";

/**
 * file_manifest against the real agent binary (host mode, rooted at a temp dir): the
 * hashes are SHA-256 as Node computes it, modes and link targets are the file system's,
 * what is not a file, directory or link is left out, and its bounds hold.
 */

let agent: HostAgent;
let client: ChannelClient;
let ws: string;

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
const manifest = (extra: { max_entries?: number; max_bytes?: number } = {}) =>
  readManifest(client, {
    root: "/ws",
    path: ".",
    max_entries: extra.max_entries ?? 1000,
    max_bytes: extra.max_bytes ?? 1 << 20,
  });

beforeAll(async () => {
  ({ agent, client } = await startAgentClient());
  ws = join(agent.root, "ws");
  mkdirSync(join(ws, "src/deep"), { recursive: true });
  writeFileSync(join(ws, "empty"), "");
  writeFileSync(join(ws, "src/a.py"), "print(1)\n");
  // Larger than one 64 KiB read and not a multiple of the SHA-256 block.
  writeFileSync(join(ws, "src/deep/big.bin"), Buffer.alloc(200_003, 7));
  writeFileSync(join(ws, "run.sh"), "#!/bin/sh\n");
  chmodSync(join(ws, "run.sh"), 0o751);
  symlinkSync("../etc/passwd", join(ws, "src/link"));
  symlinkSync("/etc", join(ws, "abs"));
  execFileSync("mkfifo", [join(ws, "pipe")]);
}, 120_000);
afterAll(() => stopAgentClient(agent, client));

describe("file_manifest", () => {
  it("lists every entry with its mode, size and, for files, the SHA-256 of the content", async () => {
    const result = await manifest();
    expect(result.truncated).toBe(false);
    expect(result.hashed_bytes).toBe(9 + 200_003 + 10);
    const byPath = new Map(result.lines.map((line) => [line.path, line]));
    expect([...byPath.keys()]).toEqual([
      "abs",
      "empty",
      "run.sh",
      "src",
      "src/a.py",
      "src/deep",
      "src/deep/big.bin",
      "src/link",
    ]);
    expect(byPath.get("empty")).toMatchObject({ size_bytes: 0, sha256: sha256("") });
    expect(byPath.get("src/a.py")).toMatchObject({
      artifact_type: "file",
      size_bytes: 9,
      mode: 0o644,
      sha256: sha256("print(1)\n"),
      link_target: null,
    });
    expect(byPath.get("src/deep/big.bin")?.sha256).toBe(sha256(Buffer.alloc(200_003, 7)));
    expect(byPath.get("run.sh")?.mode).toBe(0o751);
    expect(byPath.get("src")).toMatchObject({ artifact_type: "directory", sha256: null });
    // Links are reported, never followed: an absolute or escaping target is only text.
    expect(byPath.get("src/link")).toMatchObject({ link_target: "../etc/passwd", sha256: null });
    expect(byPath.get("abs")).toMatchObject({ artifact_type: "symlink", link_target: "/etc" });
  });

  it("marks the manifest truncated past max_bytes of content or max_entries", async () => {
    expect((await manifest({ max_bytes: 100_000 })).truncated).toBe(true);
    const few = await manifest({ max_entries: 3 });
    expect(few.truncated).toBe(true);
    expect(few.lines).toHaveLength(3);
  });

  it("refuses a root that escapes and an unknown field", async () => {
    await expect(
      client.request(AGENT_OPS.file_manifest, { root: "/ws", path: "../.." }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(
      client.request({ op: "file_manifest", root: "/ws", path: ".", recursive: false }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
  });
});
