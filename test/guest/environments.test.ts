import {
  mkdtempSync,
  readdirSync,
  symlinkSync,
  openSync,
  writeSync,
  closeSync,
  rmSync,
  statSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { mountsBelow, removeBuildDir } from "../../src/env/build-dir.js";
import { Pyro } from "../../src/index.js";
import { runChecked } from "../../src/util/process.js";
import { cacheDir } from "../../src/util/paths.js";
import { CLI_ENTRY } from "../helpers/cli.js";
import { eventually, processesMentioning } from "../helpers/guest.js";

// A cache of its own for environments, sharing the already-built kernel and agent.
const sharedCache = cacheDir();
const cache = mkdtempSync(join(tmpdir(), "pyro-env-cache-"));
for (const kind of ["kernels", "agents"]) symlinkSync(join(sharedCache, kind), join(cache, kind));
process.env.PYRO_CACHE_DIR = cache;
const pyro = new Pyro();
afterAll(() => rmSync(cache, { recursive: true, force: true }));

function imagePath(): string {
  const envDir = join(cache, "environments", "debian_12-base");
  const [digest] = readdirSync(envDir);
  return join(envDir, digest!, "rootfs.ext4");
}

describe("environment cache", () => {
  it("builds once when two pulls race, then answers from the cache", async () => {
    const [a, b] = await Promise.all([
      pyro.pullEnvironment({ environment: "debian:12-base" }),
      pyro.pullEnvironment({ environment: "debian:12-base" }),
    ]);
    expect([a.status, b.status].sort()).toEqual(["built", "cached"]);
    expect(a.manifest.image_sha256).toBe(b.manifest.image_sha256);
    expect(a.manifest.packages.find((p) => p.name === "bash")).toBeDefined();
    expect((await pyro.pullEnvironment({ environment: "debian:12-base" })).status).toBe("cached");
    const listed = await pyro.listEnvironments();
    expect(listed.environments.find((e) => e.name === "debian:12-base")?.installed).toBe(true);
  });

  it("repairs an image whose bytes were damaged", async () => {
    const image = imagePath();
    const fd = openSync(image, "r+");
    writeSync(fd, Buffer.from("corrupt"), 0, 7, Math.floor(statSync(image).size / 2));
    closeSync(fd);
    const repaired = await pyro.pullEnvironment({ environment: "debian:12-base" });
    expect(repaired.status).toBe("repaired");
    expect((await pyro.pullEnvironment({ environment: "debian:12-base" })).status).toBe("cached");
  });

  it("treats a build that never finished (no manifest) as absent and builds again", async () => {
    const image = imagePath();
    rmSync(join(image, "..", "manifest.json"));
    expect((await pyro.inspectEnvironment({ environment: "debian:12-base" })).installed).toBe(
      false,
    );
    expect((await pyro.pullEnvironment({ environment: "debian:12-base" })).status).toBe("built");
  });
});

/** Mount points below `dir` as process `pid` sees them ("self": this test's namespace). */
function mountsSeenBy(pid: number | "self", dir: string): string[] {
  try {
    return mountsBelow(readFileSync(`/proc/${pid}/mountinfo`, "utf8"), dir);
  } catch {
    return []; // the process ended while we looked
  }
}

/** A cache of its own, sharing the built kernel and agent, for one test. */
function freshCache(): string {
  const dir = mkdtempSync(join(tmpdir(), "pyro-env-cache-"));
  for (const kind of ["kernels", "agents"]) symlinkSync(join(sharedCache, kind), join(dir, kind));
  return dir;
}

describe("an environment build whose client dies", () => {
  it("removes a build dir only after detaching what is mounted in it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pyro-build-dir-"));
    const shm = join(dir, "tree", "dev", "shm");
    mkdirSync(shm, { recursive: true });
    await runChecked("mount a scratch tmpfs", "mount", ["-t", "tmpfs", "scratch", shm]);
    writeFileSync(join(shm, "host-file"), "a recursive delete must never reach me\n");
    expect(mountsSeenBy("self", dir)).toEqual([shm]);
    await removeBuildDir(dir);
    expect(mountsSeenBy("self", dir)).toEqual([]);
    expect(() => statSync(dir)).toThrow();
  });

  it("SIGKILLed mid-bootstrap leaves no mount or process behind, and the next pull builds", async () => {
    const own = freshCache();
    const builds = join(own, "build");
    try {
      const client = spawn(process.execPath, [CLI_ENTRY, "env", "pull", "debian:12-base"], {
        env: { ...process.env, PYRO_CACHE_DIR: own },
        stdio: "ignore",
      });
      // Mid-bootstrap = a process of the build has /proc, /sys, /dev/pts... mounted in the
      // tree (read from its own mountinfo, whatever namespace it is in).
      const builder = () =>
        processesMentioning(builds).find((pid) => mountsSeenBy(pid, builds).length > 0);
      expect(await eventually(() => builder() !== undefined, 300_000)).toBe(true);
      client.kill("SIGKILL");
      // Nothing of the build outlives its client: no process, no mount on the host.
      expect(await eventually(() => processesMentioning(builds).length === 0, 30_000)).toBe(true);
      expect(mountsSeenBy("self", own)).toEqual([]);
      // And the cache is not wedged: the next pull takes the dead client's lock and builds.
      process.env.PYRO_CACHE_DIR = own;
      const again = await new Pyro().pullEnvironment({ environment: "debian:12-base" });
      expect(again.status).toBe("built");
      expect(readdirSync(builds)).toEqual([]);
      expect(mountsSeenBy("self", own)).toEqual([]);
    } finally {
      process.env.PYRO_CACHE_DIR = cache;
      rmSync(own, { recursive: true, force: true });
    }
  }, 900_000);
});
