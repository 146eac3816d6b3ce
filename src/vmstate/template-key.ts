import { spawnSync } from "node:child_process";
import { stat } from "node:fs/promises";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import { cachePaths, sha256Text } from "../env/artifacts.js";
import type { BootArtifacts } from "../env/environments.js";
import { readJsonIfExists, stableJson, writeJsonAtomic } from "../util/fs.js";
import type { Acceleration, VmmLaunchSpec, VmmNetworkSpec } from "../vmm/driver.js";
import { hostTscKhz, qemuArgs, QEMU_BINARY } from "../vmm/qemu.js";

/**
 * Bumped whenever what a template holds changes meaning (the park protocol, the files
 * of a template): every template built before is then ignored and rebuilt.
 */
export const TEMPLATE_FORMAT_VERSION = 2;

/**
 * Where the template's guest parked. `early` (`pyro.park=1`): before its state disk is
 * mounted, so the template fits any state disk (a workspace's own, a host-built seed).
 * `late` (`pyro.park=late`): once init is done, so a clone skips the mounts too, but its
 * state disk must be a byte copy of the template's (fresh disks: `pyro run`, a new VM).
 */
export type TemplateKind = "early" | "late";

/**
 * The kernel arguments a template boots with. Fixed, so one template fits every VM of its
 * shape: `hello` sets the real hostname (and clock, and reseeds the RNG).
 */
export const TEMPLATE_KERNEL_ARGS: Record<TemplateKind, string[]> = {
  early: ["pyro.hostname=pyro-template", "pyro.park=1"],
  late: ["pyro.hostname=pyro-template", "pyro.park=late"],
};

/** The size of the state disk `createStateDisk` makes (`manager/boot.ts`: `8G`). */
export const STATE_DISK_BYTES = 8 * 2 ** 30;

/** What a VM looks like to QEMU: a template is restored only into the very same shape. */
export interface TemplateShape {
  kind: TemplateKind;
  vcpuCount: number;
  memMib: number;
  acceleration: Acceleration;
  /** The guarded NIC (`vmmNetworkSpec()`), or null for a VM without one (policy `off`). */
  network: VmmNetworkSpec | null;
  stateDiskBytes: number;
}

/** The identity of one QEMU binary: an upgrade changes its size, mtime or inode. */
export interface QemuIdentity {
  path: string;
  version: string;
  size: number;
  mtime_ms: number;
  inode: number;
}

/** Everything a template depends on; its sha256 is the template's key (its cache dir). */
export interface TemplateKeyInputs {
  format: number;
  kind: TemplateKind;
  qemu: QemuIdentity;
  /** The full QEMU argv of a VM of this shape, from `qemuArgs()` on a canonical spec. */
  qemu_args: string[];
  kernel: { key: string; size: number; mtime_ms: number };
  agent: { version: string; size: number; mtime_ms: number };
  environment: { name: string; image_sha256: string; image_size_bytes: number };
  state_disk_bytes: number;
}

export function templateKey(inputs: TemplateKeyInputs): string {
  return sha256Text(stableJson(inputs));
}

/** Placeholders for paths that never reach the argv (QEMU gets every file as an fd). */
const CANONICAL_PATH = "/template";

/** The launch spec a template is built with; a clone's differs only in its paths. */
export function canonicalSpec(shape: TemplateShape): VmmLaunchSpec & { memoryPath: string } {
  return {
    vmId: "template",
    kernelPath: CANONICAL_PATH,
    initrdPath: CANONICAL_PATH,
    kernelArgs: TEMPLATE_KERNEL_ARGS[shape.kind],
    vcpuCount: shape.vcpuCount,
    memMib: shape.memMib,
    acceleration: shape.acceleration,
    disks: [
      { path: CANONICAL_PATH, readOnly: true },
      { path: CANONICAL_PATH, readOnly: false },
    ],
    agentSocketPath: CANONICAL_PATH,
    controlSocketPath: CANONICAL_PATH,
    consoleLogPath: CANONICAL_PATH,
    memoryPath: CANONICAL_PATH,
    ...(shape.network ? { network: shape.network } : {}),
  };
}

/** Gathers the key's inputs; cheap enough for every boot (stats, no file hashing). */
export async function templateKeyInputs(
  shape: TemplateShape,
  artifacts: BootArtifacts,
): Promise<TemplateKeyInputs> {
  const [kernel, initramfs] = await Promise.all([
    stat(artifacts.kernel.path),
    stat(artifacts.agent.initramfs),
  ]);
  return {
    format: TEMPLATE_FORMAT_VERSION,
    kind: shape.kind,
    qemu: await qemuIdentity(),
    qemu_args: qemuArgs(canonicalSpec(shape), hostTscKhz()),
    kernel: { key: artifacts.kernel.key, size: kernel.size, mtime_ms: kernel.mtimeMs },
    agent: {
      version: artifacts.agent.version,
      size: initramfs.size,
      mtime_ms: initramfs.mtimeMs,
    },
    environment: {
      name: artifacts.environment,
      image_sha256: artifacts.manifest.image_sha256,
      image_size_bytes: artifacts.manifest.image_size_bytes,
    },
    state_disk_bytes: shape.stateDiskBytes,
  };
}

/**
 * The QEMU binary the driver runs, by its file's identity plus its `--version` line. The
 * version is asked once per identity and kept in the cache (a spawn of QEMU costs ~40 ms,
 * which every warm boot would pay); an upgrade changes the identity, so it is asked again.
 */
export async function qemuIdentity(binary = QEMU_BINARY): Promise<QemuIdentity> {
  const path = await resolveOnPath(binary);
  const info = await stat(path);
  const file = { path, size: info.size, mtime_ms: info.mtimeMs, inode: info.ino };
  const memo = join(cachePaths.root(), "qemu-version.json");
  const known = await readJsonIfExists<QemuIdentity>(memo).catch(() => undefined);
  if (known && stableJson({ ...known, version: "" }) === stableJson({ ...file, version: "" })) {
    return known;
  }
  const run = spawnSync(path, ["--version"], { encoding: "utf8", timeout: 10_000 });
  const identity = { ...file, version: (run.stdout ?? "").split("\n")[0]?.trim() ?? "" };
  if (identity.version) await writeJsonAtomic(memo, identity).catch(() => {});
  return identity;
}

async function resolveOnPath(binary: string): Promise<string> {
  if (isAbsolute(binary) || binary.includes("/")) return resolve(binary);
  for (const dir of (process.env.PATH ?? "").split(delimiter).filter(Boolean)) {
    const candidate = join(dir, binary);
    if (
      await stat(candidate).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      return candidate;
  }
  return binary;
}
