import { readFile, rm } from "node:fs/promises";
import { resolve, sep } from "node:path";
import { PyroError } from "../contract/errors.js";
import { runCommand } from "../util/process.js";

/**
 * Build directories that may hold mounts. `mmdebstrap --mode=root` mounts /proc, /sys,
 * /dev/pts and binds host devices and /dev/shm inside the tree it builds, and unmounts
 * them only if it gets to run its cleanup. A client killed mid-build (Ctrl-C, `timeout`,
 * SIGKILL) used to leave them mounted in the host's namespace: every later pull then
 * failed with EBUSY on `rmdir tree/proc` until someone unmounted by hand, and a recursive
 * delete walking into the bound /dev/shm would empty the host's.
 *
 * Two layers: the build runs in a mount and PID namespace of its own that dies with the
 * client (`isolatedCommand`), and before a build directory is removed, whatever is still
 * mounted below it is detached first (`removeBuildDir`), for trees left by older versions.
 */

/**
 * `cmd args` wrapped so that its mounts and processes cannot outlive the client:
 * - `setpriv --pdeathsig KILL`: the wrapper is killed when the pyro process that spawned
 *   it dies, however it dies (SIGKILL gives no chance to clean up);
 * - `unshare --mount --propagation private`: its mounts live in a namespace of its own,
 *   invisible to the host and gone when the last process in it exits;
 * - `--pid --fork --kill-child`: the build is PID 1 of a new PID namespace and is killed
 *   with the wrapper; when PID 1 dies the kernel kills every process left in the
 *   namespace (apt, dpkg, maintainer scripts), so nothing keeps the mounts alive.
 */
export function isolatedCommand(cmd: string, args: string[]): { cmd: string; args: string[] } {
  return {
    cmd: "setpriv",
    args: [
      "--pdeathsig",
      "KILL",
      "--",
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "--pid",
      "--fork",
      "--kill-child=SIGKILL",
      "--",
      cmd,
      ...args,
    ],
  };
}

/** mountinfo escapes space, tab, newline and backslash in paths as `\ooo`. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(Number.parseInt(octal, 8)),
  );
}

/** Mount points at or below `dir` in a `/proc/<pid>/mountinfo` text, deepest first. */
export function mountsBelow(mountinfo: string, dir: string): string[] {
  const root = resolve(dir);
  const points = new Set<string>();
  for (const line of mountinfo.split("\n")) {
    const field = line.split(" ")[4];
    if (field === undefined) continue;
    const point = unescapeMountPath(field);
    if (point === root || point.startsWith(root + sep)) points.add(point);
  }
  return [...points].sort((a, b) => b.length - a.length || b.localeCompare(a));
}

/**
 * Detaches whatever is mounted at or below `dir`, deepest first, so that walking or
 * deleting it never enters a mounted /proc, /sys or the host's /dev/shm. Throws
 * `conflict`, saying what to run, when a mount cannot be detached (pyro is not root).
 */
export async function detachMountsBelow(dir: string): Promise<void> {
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
  for (const point of mountsBelow(mountinfo, dir)) {
    // --lazy: a process still using it (a leftover from an old build) cannot block this.
    const result = await runCommand("umount", ["--lazy", point]).catch((error: Error) => ({
      code: null,
      stderr: error.message,
    }));
    if (result.code !== 0) {
      throw new PyroError(
        "conflict",
        `${point} is still mounted, left by an interrupted environment build, and pyro ` +
          `could not unmount it (${result.stderr.trim() || `umount exited ${result.code}`}); ` +
          `run \`umount --recursive --lazy ${dir}\` as root, then pull again`,
        { details: { path: dir, mount: point } },
      );
    }
  }
}

/** Removes a build directory; nothing is deleted when a mount below it stays. */
export async function removeBuildDir(dir: string): Promise<void> {
  await detachMountsBelow(dir);
  // Retries: processes of a build killed a moment ago may still be writing as they die.
  await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}
