import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isPyroError } from "../../src/contract/errors.js";
import { Pyro } from "../../src/index.js";
import { HOST_ENVIRONMENT, hostTierHome } from "../helpers/host.js";

// The disk tools' state rules through the real manager and shim, in seconds: under the
// host-process driver the guest never writes the state disk, so the merged root is the
// environment's image alone (test/guest/workspace-disk.test.ts covers a guest's writes).
const home = hostTierHome();
const pyro = new Pyro();
let id = "";

beforeAll(async () => {
  ({ workspace_id: id } = await pyro.createWorkspace({ environment: HOST_ENVIRONMENT }));
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
});

const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => "ok",
    (e: unknown) => (isPyroError(e) ? e.code : String(e)),
  );

describe("workspace disk tools and the workspace's state", () => {
  it("refuse a started workspace with conflict, and every tool alike", async () => {
    expect(await codeOf(pyro.listWorkspaceDisk({ workspace_id: id }))).toBe("conflict");
    expect(await codeOf(pyro.readWorkspaceDisk({ workspace_id: id, path: "/etc/hostname" }))).toBe(
      "conflict",
    );
    const output = join(home, "refused.ext4");
    expect(await codeOf(pyro.exportWorkspaceDisk({ workspace_id: id, output_path: output }))).toBe(
      "conflict",
    );
  });

  it("read the environment's image once the workspace is stopped", async () => {
    await pyro.stopWorkspace({ workspace_id: id });
    const listed = await pyro.listWorkspaceDisk({ workspace_id: id, path: "/etc" });
    expect(listed.entries.map((e) => e.path)).toContain("/etc/debian_version");
    const read = await pyro.readWorkspaceDisk({ workspace_id: id, path: "etc/debian_version" });
    expect(read).toMatchObject({ path: "/etc/debian_version", encoding: "utf-8" });
    expect(read.content).toMatch(/^12\./);
  });

  it("refuse bad paths and an existing output before any work", async () => {
    expect(await codeOf(pyro.readWorkspaceDisk({ workspace_id: id, path: "/etc/../root" }))).toBe(
      "invalid_argument",
    );
    expect(await codeOf(pyro.readWorkspaceDisk({ workspace_id: id, path: "/etc" }))).toBe(
      "invalid_argument",
    );
    expect(await codeOf(pyro.readWorkspaceDisk({ workspace_id: id, path: "/no/such" }))).toBe(
      "not_found",
    );
    const existing = join(home, "existing.ext4");
    writeFileSync(existing, "keep");
    expect(
      await codeOf(pyro.exportWorkspaceDisk({ workspace_id: id, output_path: existing })),
    ).toBe("conflict");
    expect(await codeOf(pyro.listWorkspaceDisk({ workspace_id: "ws_000000000000" }))).toBe(
      "not_found",
    );
  });

  it("say conflict for a workspace whose disk was never made", async () => {
    rmSync(join(home, "workspaces", id, "state.ext4"));
    expect(await codeOf(pyro.listWorkspaceDisk({ workspace_id: id }))).toBe("conflict");
  });
});
