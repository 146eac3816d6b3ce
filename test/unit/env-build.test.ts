import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mountsBelow } from "../../src/env/build-dir.js";
import { findRecipe } from "../../src/env/catalog.js";
import { withBuildLock } from "../../src/env/environments.js";
import { cachePaths, slug } from "../../src/env/artifacts.js";
import { tempDir } from "../helpers/temp.js";

/** Lines shaped like /proc/self/mountinfo (field 5 is the mount point, `\ooo`-escaped). */
const MOUNTINFO = [
  "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
  "40 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw",
  "41 40 0:20 / /dev/shm rw shared:3 - tmpfs tmpfs rw",
  "90 22 0:50 / /c/build/env-x/tree/proc rw - proc proc rw",
  "91 90 0:51 / /c/build/env-x/tree/proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw",
  "92 22 0:52 / /c/build/env-x/tree/sys ro - sysfs sys ro",
  "93 22 0:20 / /c/build/env-x/tree/dev/shm rw - tmpfs tmpfs rw",
  "94 22 0:53 / /c/build/env-x/tree/dev/pts rw - devpts none rw",
  "95 22 0:5 /null /c/build/env-x/tree/dev/null rw - devtmpfs udev rw",
  // A sibling whose name merely starts the same way is not below the build dir.
  "96 22 0:54 / /c/build/env-x2/tree/proc rw - proc proc rw",
  // Spaces in a path are escaped as \040 by the kernel.
  "97 22 0:55 / /c/build/env-x/tree/with\\040space rw - tmpfs tmpfs rw",
].join("\n");

describe("mounts left below a build directory", () => {
  it("finds every mount at or below the directory, deepest first, and nothing beside it", () => {
    const found = mountsBelow(MOUNTINFO, "/c/build/env-x");
    expect(found[0]).toBe("/c/build/env-x/tree/proc/sys/fs/binfmt_misc");
    expect([...found].sort()).toEqual(
      [
        "/c/build/env-x/tree/proc",
        "/c/build/env-x/tree/proc/sys/fs/binfmt_misc",
        "/c/build/env-x/tree/sys",
        "/c/build/env-x/tree/dev/shm",
        "/c/build/env-x/tree/dev/pts",
        "/c/build/env-x/tree/dev/null",
        "/c/build/env-x/tree/with space",
      ].sort(),
    );
    // Deepest first: a mount is detached before the one it sits on.
    for (const [i, point] of found.entries()) {
      for (const later of found.slice(i + 1)) expect(later.startsWith(`${point}/`)).toBe(false);
    }
  });

  it("counts the directory itself, accepts a trailing slash and finds none in a clean tree", () => {
    expect(mountsBelow(MOUNTINFO, "/c/build/env-x/tree/sys/")).toEqual(["/c/build/env-x/tree/sys"]);
    expect(mountsBelow(MOUNTINFO, "/c/build/env-y")).toEqual([]);
    expect(mountsBelow("", "/c")).toEqual([]);
  });
});

describe("a build of an environment held by another live process", () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.PYRO_CACHE_DIR;
    process.env.PYRO_CACHE_DIR = tempDir("pyro-env-lock-");
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.PYRO_CACHE_DIR;
    else process.env.PYRO_CACHE_DIR = saved;
  });

  it("is a conflict that names the environment, the process and what to do", async () => {
    const recipe = findRecipe("debian:12-base");
    const lock = join(cachePaths.locks(), `env-${slug(recipe.name)}-${recipe.digest}.lock`);
    const { mkdirSync } = await import("node:fs");
    mkdirSync(cachePaths.locks(), { recursive: true });
    // This test's own process stands in for a live builder.
    writeFileSync(lock, String(process.pid));
    const phases: string[] = [];
    let built = false;
    const error = await withBuildLock(
      recipe,
      (event) => phases.push(`${event.phase} pid=${event.fields?.pid}`),
      async () => {
        built = true;
      },
      { timeoutMs: 300 },
    ).catch((e: unknown) => e);
    expect(built).toBe(false);
    expect(phases).toEqual([`wait-lock pid=${process.pid}`]);
    expect(error).toMatchObject({
      code: "conflict",
      details: { environment: "debian:12-base", holder_pid: process.pid },
    });
    const message = (error as Error).message;
    expect(message).toContain(`another build of environment debian:12-base is running`);
    expect(message).toContain(`process ${process.pid}`);
    expect(message).toContain(`kill ${process.pid}`);
  });

  it("is taken over when its holder died, and the build runs", async () => {
    const recipe = findRecipe("debian:12-base");
    const lock = join(cachePaths.locks(), `env-${slug(recipe.name)}-${recipe.digest}.lock`);
    const { mkdirSync } = await import("node:fs");
    mkdirSync(cachePaths.locks(), { recursive: true });
    writeFileSync(lock, "2147483646"); // no such process
    expect(
      await withBuildLock(
        recipe,
        () => {},
        async () => "built",
      ),
    ).toBe("built");
  });
});
