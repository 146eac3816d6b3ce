import {
  mkdtempSync,
  readdirSync,
  symlinkSync,
  openSync,
  writeSync,
  closeSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { cacheDir } from "../../src/util/paths.js";

// A cache of its own for environments, sharing the already-built kernel and agent.
const sharedCache = cacheDir();
const cache = mkdtempSync(join(tmpdir(), "pyro-env-cache-"));
for (const kind of ["kernels", "agents"]) symlinkSync(join(sharedCache, kind), join(cache, kind));
process.env.PYRO_CACHE_DIR = cache;
const pyro = new Pyro();

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
    rmSync(cache, { recursive: true, force: true });
  });
});
