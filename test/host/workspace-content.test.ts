import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { eventually, processesMentioning } from "../helpers/guest.js";
import { HOST_ENVIRONMENT, hostTierHome, scratchDir } from "../helpers/host.js";

// The workspace content operations through the real shim, manager and agent, in seconds:
// one workspace for the file, each step building on the last.
const home = hostTierHome();
const pyro = new Pyro();
let id = "";

beforeAll(async () => {
  const seed = scratchDir();
  writeFileSync(join(seed, "a.txt"), "seeded\n");
  const created = await pyro.createWorkspace({ environment: HOST_ENVIRONMENT, seed_path: seed });
  id = created.workspace_id;
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
});

const sh = async (script: string) => {
  const result = await pyro.execWorkspace({ workspace_id: id, command: ["sh", "-c", script] });
  return { exit_code: result.exit_code, stdout: result.stdout };
};

describe("workspace content under the host-process driver", () => {
  it("unpacks the seed into the workspace's own tree, not the host's /workspace", async () => {
    expect(await sh("cat a.txt")).toEqual({ exit_code: 0, stdout: "seeded\n" });
    const tree = join(home, "workspaces", id, "host-root", "workspace");
    expect(readFileSync(join(tree, "a.txt"), "utf8")).toBe("seeded\n");
    expect(existsSync("/workspace/a.txt")).toBe(false);
  });

  it("exec, file write and read, and diff see the same tree", async () => {
    expect(await sh("echo built > out.txt; echo changed > a.txt; exit 3")).toEqual({
      exit_code: 3,
      stdout: "",
    });
    await pyro.writeWorkspaceFile({ workspace_id: id, path: "src/new.txt", text: "written\n" });
    expect((await pyro.readWorkspaceFile({ workspace_id: id, path: "out.txt" })).content).toBe(
      "built\n",
    );
    expect(await sh("cat src/new.txt")).toEqual({ exit_code: 0, stdout: "written\n" });
    const diff = await pyro.diffWorkspace({ workspace_id: id });
    expect(diff.entries.map((e) => [e.path, e.status]).sort()).toEqual([
      ["a.txt", "modified"],
      ["out.txt", "added"],
      ["src", "added"],
      ["src/new.txt", "added"],
    ]);
    expect(diff.patch).toContain("+changed");
  });

  it("exports a directory through the guest's tar", async () => {
    const output = join(scratchDir(), "src-copy");
    const exported = await pyro.exportWorkspace({
      workspace_id: id,
      path: "src",
      output_path: output,
    });
    expect(exported).toMatchObject({ artifact_type: "directory", entries: 1 });
    expect(readFileSync(join(output, "new.txt"), "utf8")).toBe("written\n");
  });

  it("reset to a snapshot brings it back and drops what came after", async () => {
    await pyro.createSnapshot({ workspace_id: id, snapshot_name: "built" });
    await sh("rm out.txt; echo later > later.txt");
    await pyro.resetWorkspace({ workspace_id: id, snapshot: "built" });
    expect(await sh("cat out.txt a.txt; ls")).toEqual({
      exit_code: 0,
      stdout: "built\nchanged\na.txt\nout.txt\nsrc\n",
    });
  });

  it("reset to the baseline gives the seeded tree and nothing else", async () => {
    await pyro.resetWorkspace({ workspace_id: id });
    expect(await sh("ls -A; cat a.txt")).toEqual({ exit_code: 0, stdout: "a.txt\nseeded\n" });
    expect((await pyro.diffWorkspace({ workspace_id: id })).changed).toBe(false);
  });

  it("stop and start keep the tree", async () => {
    await sh("echo kept > kept.txt");
    expect((await pyro.stopWorkspace({ workspace_id: id })).state).toBe("stopped");
    // The shim exits just after its reply; the agent is gone before it.
    const dir = join(home, "workspaces", id);
    expect(await eventually(() => processesMentioning(dir).length === 0)).toBe(true);
    expect((await pyro.startWorkspace({ workspace_id: id })).state).toBe("started");
    expect(await sh("cat kept.txt a.txt")).toEqual({ exit_code: 0, stdout: "kept\nseeded\n" });
  });

  it("delete removes the workspace, its tree and its processes", async () => {
    await pyro.deleteWorkspace({ workspace_id: id });
    expect(existsSync(join(home, "workspaces", id))).toBe(false);
    expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
    id = "";
  });
});
