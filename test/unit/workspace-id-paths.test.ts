/**
 * A workspace id comes from callers (and models): service and shell calls must check it
 * before it becomes part of a path under PYRO_HOME, or `../x` reads records (and lists
 * file names) from directories that are not workspaces.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Pyro } from "../../src/sdk/pyro.js";

let home = "";
const pyro = new Pyro();
const outside = "../planted";

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "pyro-id-paths-"));
  process.env.PYRO_HOME = home;
  // A directory beside `workspaces/` that looks like a workspace's insides.
  mkdirSync(join(home, "planted", "services"), { recursive: true });
  mkdirSync(join(home, "planted", "shells"), { recursive: true });
  const record = {
    workspace_id: "ws_0123456789ab",
    service_name: "private-name",
    state: "exited",
    command: ["x"],
    cwd: "/workspace",
    started_at: "2026-01-01T00:00:00.000Z",
    ready_at: null,
    ended_at: null,
    exit_code: 0,
    signal: null,
    pid: 1,
    readiness: null,
    stop_reason: null,
    published_ports: [],
  };
  writeFileSync(join(home, "planted", "services", "private-name.json"), JSON.stringify(record));
  writeFileSync(join(home, "planted", "shells", "sh-1.json"), "{ not json");
});

afterEach(() => {
  delete process.env.PYRO_HOME;
  rmSync(home, { recursive: true, force: true });
});

describe("a workspace id outside workspaces/ is not_found before any record is read", () => {
  it.each([
    ["service status", () => pyro.statusService({ workspace_id: outside, service_name: "x" })],
    ["service logs", () => pyro.logsService({ workspace_id: outside, service_name: "x" })],
    ["service stop", () => pyro.stopService({ workspace_id: outside, service_name: "x" })],
    ["shell read", () => pyro.readShell({ workspace_id: outside, shell_id: "sh-1" })],
    ["shell write", () => pyro.writeShell({ workspace_id: outside, shell_id: "sh-1", input: "" })],
    ["shell signal", () => pyro.signalShell({ workspace_id: outside, shell_id: "sh-1" })],
    ["shell close", () => pyro.closeShell({ workspace_id: outside, shell_id: "sh-1" })],
  ])("%s", async (_what, run) => {
    const error = await run().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "not_found" });
    expect((error as Error).message).toMatch(/no workspace|ids look like/);
    expect((error as Error).message).not.toContain("private-name");
  });
});
