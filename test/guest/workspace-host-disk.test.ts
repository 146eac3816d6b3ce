import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { workspaceDir, workspaceFiles } from "../../src/manager/workspace-store.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";
import { tempDir } from "../helpers/temp.js";

// Workspace content written into the state disk on the host (src/manager/state-disk.ts),
// as a booted guest sees it: the seed's modes, owners and links at create, and reset to
// a snapshot or the baseline. One workspace; each reset is one boot.
const home = isolatedHome();
const pyro = new Pyro();
const scratch = tempDir("pyro-host-disk-");
const seed = join(scratch, "seed");
let id = "";

function put(path: string, content: string, mode: number) {
  mkdirSync(dirname(join(seed, path)), { recursive: true });
  writeFileSync(join(seed, path), content);
  chmodSync(join(seed, path), mode);
}

function makeSeed() {
  put("README.md", "# seed\n", 0o644);
  put("bin/run.sh", "#!/bin/sh\necho ran\n", 0o755);
  put("secret/key", "k\n", 0o600);
  put("deep/a/b/with space.txt", "deep\n", 0o640);
  chmodSync(join(seed, "secret"), 0o700);
  // Owned by someone else on the host: root's in the guest, as the guest's tar made it.
  chownSync(join(seed, "README.md"), 4321, 4321);
  mkdirSync(join(seed, "emptydir"));
  symlinkSync("bin/run.sh", join(seed, "run"));
  symlinkSync("/etc/hostname", join(seed, "abs"));
  symlinkSync("nowhere", join(seed, "dangling"));
}

const SEED_LISTING = [
  "./README.md -rw-r--r-- root:root ",
  "./abs lrwxrwxrwx root:root /etc/hostname",
  "./bin drwxr-xr-x root:root ",
  "./bin/run.sh -rwxr-xr-x root:root ",
  "./dangling lrwxrwxrwx root:root nowhere",
  "./deep drwxr-xr-x root:root ",
  "./deep/a drwxr-xr-x root:root ",
  "./deep/a/b drwxr-xr-x root:root ",
  "./deep/a/b/with space.txt -rw-r----- root:root ",
  "./emptydir drwxr-xr-x root:root ",
  "./run lrwxrwxrwx root:root bin/run.sh",
  "./secret drwx------ root:root ",
  "./secret/key -rw------- root:root ",
];

async function sh(script: string) {
  const result = await pyro.execWorkspace({ workspace_id: id, command: ["sh", "-c", script] });
  expect(result.stderr).toBe("");
  return result.stdout;
}

const listing = async () =>
  (await sh("find . -mindepth 1 -printf '%p %M %u:%g %l\\n' | LC_ALL=C sort"))
    .split("\n")
    .filter(Boolean);

beforeAll(async () => {
  makeSeed();
  const created = await pyro.createWorkspace({
    environment: "debian:12-base",
    seed_path: seed,
    mem_mib: 256,
  });
  id = created.workspace_id;
  expect(created).toMatchObject({ state: "started", error: null });
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

describe("workspace content built into the state disk on the host", () => {
  it("lands the seed with its modes, root as owner, and its symlinks", async () => {
    expect(await listing()).toEqual(SEED_LISTING);
    expect(await sh("./run; cat 'deep/a/b/with space.txt'; stat -c '%a %U' .")).toBe(
      "ran\ndeep\n755 root\n",
    );
  });

  it("resets to a snapshot and to the baseline, each a disk of its own", async () => {
    await sh("echo one > added.txt && rm README.md");
    await pyro.createSnapshot({ workspace_id: id, snapshot_name: "s1" });
    await sh("echo two > later.txt && rm -r secret");
    const toSnapshot = await pyro.resetWorkspace({ workspace_id: id, snapshot: "s1" });
    expect(toSnapshot).toMatchObject({ state: "started", error: null, reset_count: 1 });
    const s1 = SEED_LISTING.filter((line) => !line.startsWith("./README.md "));
    expect(await listing()).toEqual([...s1, "./added.txt -rw-r--r-- root:root "].sort());
    expect(await sh("cat added.txt")).toBe("one\n");

    const toBaseline = await pyro.resetWorkspace({ workspace_id: id, snapshot: "baseline" });
    expect(toBaseline).toMatchObject({ state: "started", error: null, reset_count: 2 });
    expect(await listing()).toEqual(SEED_LISTING);
  });

  it("refuses a hostile snapshot and keeps the disk it had, stopped", async () => {
    await sh("echo kept > kept.txt");
    const evil = join(scratch, "evil");
    mkdirSync(evil);
    writeFileSync(join(evil, "x"), "x\n");
    const bad = workspaceFiles(workspaceDir(id)).snapshot("bad");
    execFileSync("tar", ["-cf", bad, "-C", evil, "--transform", "s,^x,../../escape,", "x"]);
    await expect(pyro.resetWorkspace({ workspace_id: id, snapshot: "bad" })).rejects.toMatchObject({
      code: "guest_error",
    });
    expect(await pyro.statusWorkspace({ workspace_id: id })).toMatchObject({
      state: "stopped",
      reset_count: 2,
    });
    await pyro.startWorkspace({ workspace_id: id });
    expect(await sh("cat kept.txt")).toBe("kept\n");
  });
});
