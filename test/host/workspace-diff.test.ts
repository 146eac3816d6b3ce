import { chmodSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { extractArchive, DEFAULT_ARCHIVE_LIMITS } from "../../src/workspace/archive.js";
import { diffTrees } from "../../src/workspace/diff.js";
import { readTree } from "../../src/workspace/tree.js";
import { HOST_ENVIRONMENT, hostTierHome, scratchDir } from "../helpers/host.js";

/**
 * The manifest diff through the real shim, manager and agent, checked against the diff of
 * the whole trees (the baseline unpacked, /workspace exported): the same result, whether
 * the changed files come out one by one or as one archive. And snapshots, now streamed
 * into their file, still refuse what they refused and leave nothing behind.
 */
const home = hostTierHome();
const pyro = new Pyro();
let id = "";

beforeAll(async () => {
  const seed = scratchDir();
  mkdirSync(join(seed, "src/lib"), { recursive: true });
  mkdirSync(join(seed, "empty"));
  mkdirSync(join(seed, "dir-to-file"));
  writeFileSync(join(seed, "dir-to-file/inner.txt"), "inner\n");
  writeFileSync(join(seed, "a.txt"), "one\ntwo\nthree\n");
  writeFileSync(join(seed, "run.sh"), "#!/bin/sh\necho hi\n");
  writeFileSync(join(seed, "data.bin"), Buffer.from([0, 1, 2, 3]));
  writeFileSync(join(seed, "file-to-dir"), "was a file\n");
  writeFileSync(join(seed, "src/lib/util.py"), "def f():\n    return 1\n");
  symlinkSync("a.txt", join(seed, "link"));
  chmodSync(join(seed, "run.sh"), 0o644);
  const created = await pyro.createWorkspace({ environment: HOST_ENVIRONMENT, seed_path: seed });
  id = created.workspace_id;
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
});

const sh = async (script: string) => {
  const result = await pyro.execWorkspace({ workspace_id: id, command: ["sh", "-c", script] });
  expect(result.exit_code, result.stderr).toBe(0);
};

/** The diff of the whole trees, as workspace_diff computed it before manifests. */
async function wholeTreeDiff() {
  const baseline = scratchDir();
  const baselineTar = join(home, "workspaces", id, "baseline.tar");
  await extractArchive(baselineTar, baseline, DEFAULT_ARCHIVE_LIMITS, { origin: "guest" });
  const output = join(scratchDir(), "current");
  await pyro.exportWorkspace({ workspace_id: id, path: "/workspace", output_path: output });
  return { workspace_id: id, ...diffTrees(await readTree(baseline), await readTree(output)) };
}

describe("workspace diff from manifests", () => {
  it("is empty, and the same as the whole-tree diff, right after creation", async () => {
    const diff = await pyro.diffWorkspace({ workspace_id: id });
    expect(diff.changed).toBe(false);
    expect(diff).toEqual(await wholeTreeDiff());
  });

  it("gives the whole-tree diff for every kind of change, a few files read one by one", async () => {
    await sh(
      [
        "printf 'one\\nTWO\\nthree\\n' > a.txt",
        "chmod +x run.sh",
        "printf '\\0\\1\\2\\4' > data.bin",
        "ln -sfn run.sh link",
        "rm -r dir-to-file && echo now a file > dir-to-file",
        "rm file-to-dir && mkdir file-to-dir && echo inside > file-to-dir/x.txt",
        "rmdir empty && mkdir -p new/empty",
        "rm src/lib/util.py",
        "echo added > 'with space.txt'",
      ].join(" && "),
    );
    const diff = await pyro.diffWorkspace({ workspace_id: id });
    expect(diff.summary).toMatchObject({ added: 4, deleted: 3, type_changed: 2 });
    expect(diff).toEqual(await wholeTreeDiff());
  });

  it("gives the whole-tree diff when many files changed (one archive from the guest)", async () => {
    await sh("mkdir -p many && for i in $(seq 100); do echo $i > many/f$i.txt; done");
    const diff = await pyro.diffWorkspace({ workspace_id: id });
    expect(diff.entries.filter((e) => e.path.startsWith("many/"))).toHaveLength(100);
    expect(diff).toEqual(await wholeTreeDiff());
  });

  it("diffs a workspace over the manifest's 64 MiB hash budget as whole trees, same result", async () => {
    await sh("head -c 70000000 /dev/zero > big.bin");
    const diff = await pyro.diffWorkspace({ workspace_id: id });
    expect(diff.entries).toContainEqual({
      path: "big.bin",
      status: "added",
      artifact_type: "file",
      binary: true,
    });
    expect(diff).toEqual(await wholeTreeDiff());
    await sh("rm big.bin");
  });

  it("caches the baseline's manifest beside the baseline, and never trusts a stale cache", async () => {
    const cache = join(home, "workspaces", id, "baseline-manifest.json");
    expect(existsSync(cache)).toBe(true);
    const diff = await pyro.diffWorkspace({ workspace_id: id });
    // A cache for another baseline (its key differs) that says the baseline was empty:
    // used, it would show every file as added.
    writeFileSync(cache, "1:0:0:0\n[]");
    expect(await pyro.diffWorkspace({ workspace_id: id })).toEqual(diff);
    writeFileSync(cache, "garbage");
    expect(await pyro.diffWorkspace({ workspace_id: id })).toEqual(diff);
  });
});

describe("snapshots streamed into their file", () => {
  it("keep the tree: a reset to one gives a workspace with no diff to that moment", async () => {
    const before = await pyro.diffWorkspace({ workspace_id: id });
    // What a host process killed mid-snapshot leaves; the next snapshot clears it.
    const leftover = join(home, "workspaces", id, "snapshots", ".old.tar.0a1b2c.partial");
    writeFileSync(leftover, "half");
    await pyro.createSnapshot({ workspace_id: id, snapshot_name: "streamed" });
    expect(existsSync(leftover)).toBe(false);
    await sh("rm -r many && echo later > later.txt");
    await pyro.resetWorkspace({ workspace_id: id, snapshot: "streamed" });
    expect(await pyro.diffWorkspace({ workspace_id: id })).toEqual(before);
  });

  it("refuse a workspace holding a FIFO or a hard link, and leave no file behind", async () => {
    const snapshots = join(home, "workspaces", id, "snapshots");
    for (const script of ["mkfifo pipe", "rm pipe && echo x > h1 && ln h1 h2"]) {
      await sh(script);
      await expect(
        pyro.createSnapshot({ workspace_id: id, snapshot_name: "refused" }),
      ).rejects.toMatchObject({ code: "guest_error" });
      expect(readdirSync(snapshots)).toEqual(["streamed.tar"]);
    }
    const names = (await pyro.listSnapshots({ workspace_id: id })).snapshots.map(
      (s) => s.snapshot_name,
    );
    expect(names).toEqual(["baseline", "streamed"]);
  });
});
