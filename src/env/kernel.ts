import { cpus } from "node:os";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../contract/errors.js";
import { readJsonIfExists, writeJsonAtomic } from "../util/fs.js";
import { withLock } from "../util/lock.js";
import { packageRoot } from "../util/paths.js";
import { runChecked, runCommand } from "../util/process.js";
import type { ProgressSink } from "../util/progress.js";
import { cachePaths, sha256Text } from "./artifacts.js";

export const KERNEL_SOURCE_PACKAGE = "linux-source-6.1";
const KERNEL_SOURCE_TARBALL = `/usr/src/${KERNEL_SOURCE_PACKAGE}.tar.xz`;
const CONFIG_FRAGMENT = join(packageRoot, "kernel", "pyro-guest.config");
/** Compile steps of a full build with our fragment, measured once; only for the % shown. */
const EXPECTED_BUILD_STEPS = 1100;

export interface KernelArtifact {
  path: string;
  version: string;
  key: string;
}

interface KernelManifest {
  source_package: string;
  source_version: string;
  config_sha256: string;
  built_at: string;
  build_seconds: number;
}

/** The cache key: source package version + config fragment hash. */
let memoKey: Promise<{ key: string; sourceVersion: string }> | undefined;

/** Memoised per process: every boot asks, and the answer only changes with an upgrade. */
export function kernelKey(): Promise<{ key: string; sourceVersion: string }> {
  memoKey ??= computeKernelKey();
  memoKey.catch(() => (memoKey = undefined));
  return memoKey;
}

async function computeKernelKey(): Promise<{ key: string; sourceVersion: string }> {
  const sourceVersion = await installedPackageVersion(KERNEL_SOURCE_PACKAGE);
  if (!sourceVersion) {
    throw new PyroError(
      "unavailable",
      `the guest kernel is built from Debian's ${KERNEL_SOURCE_PACKAGE}, which is not installed; ` +
        `run: apt-get install ${KERNEL_SOURCE_PACKAGE} (or scripts/setup.sh)`,
    );
  }
  const fragment = await readFile(CONFIG_FRAGMENT, "utf8");
  const key = `${sourceVersion.replace(/[^A-Za-z0-9.+-]/g, "_")}-${sha256Text(fragment).slice(0, 12)}`;
  return { key, sourceVersion };
}

export async function cachedKernel(): Promise<KernelArtifact | undefined> {
  const { key } = await kernelKey();
  const dir = join(cachePaths.kernels(), key);
  const manifest = await readJsonIfExists<KernelManifest>(join(dir, "manifest.json"));
  if (!manifest) return undefined;
  return { path: join(dir, "vmlinux"), version: key, key };
}

/** Returns the cached guest kernel, building it (minutes, with progress) when missing. */
export async function ensureKernel(progress: ProgressSink): Promise<KernelArtifact> {
  const found = await cachedKernel();
  if (found) return found;
  const { key, sourceVersion } = await kernelKey();
  return withLock(
    join(cachePaths.locks(), `kernel-${key}.lock`),
    async () => (await cachedKernel()) ?? buildKernel(key, sourceVersion, progress),
    { onWait: (pid) => progress({ scope: "kernel", phase: "wait-lock", fields: { pid } }) },
  );
}

async function buildKernel(key: string, sourceVersion: string, progress: ProgressSink) {
  const started = Date.now();
  const buildRoot = join(cachePaths.builds(), `kernel-${key}`);
  await rm(buildRoot, { recursive: true, force: true });
  await mkdir(buildRoot, { recursive: true });
  const emit = (phase: string, extra: Partial<Parameters<ProgressSink>[0]> = {}) =>
    progress({ scope: "kernel", phase, fields: { version: key }, ...extra });
  try {
    emit("extract-source");
    await runChecked("extract kernel source", "tar", [
      "-xf",
      KERNEL_SOURCE_TARBALL,
      "-C",
      buildRoot,
    ]);
    const src = join(buildRoot, KERNEL_SOURCE_PACKAGE);
    emit("configure");
    await runChecked("make tinyconfig", "make", ["-s", "tinyconfig"], { cwd: src });
    await runChecked(
      "merge kernel config",
      "scripts/kconfig/merge_config.sh",
      ["-m", ".config", CONFIG_FRAGMENT],
      { cwd: src },
    );
    await runChecked("make olddefconfig", "make", ["-s", "olddefconfig"], { cwd: src });
    await checkConfigApplied(join(src, ".config"));
    emit("compile", { fraction: 0 });
    let steps = 0;
    const jobs = String(Math.max(1, cpus().length));
    await runChecked("make vmlinux", "make", [`-j${jobs}`, "vmlinux"], {
      cwd: src,
      onLine: (line) => {
        steps += 1;
        emit("compile", {
          fraction: Math.min(0.99, steps / EXPECTED_BUILD_STEPS),
          detail: line.trim(),
        });
      },
    });
    const dir = join(cachePaths.kernels(), key);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await rename(join(src, "vmlinux"), join(dir, "vmlinux"));
    const manifest: KernelManifest = {
      source_package: KERNEL_SOURCE_PACKAGE,
      source_version: sourceVersion,
      config_sha256: sha256Text(await readFile(CONFIG_FRAGMENT, "utf8")),
      built_at: new Date().toISOString(),
      build_seconds: Math.round((Date.now() - started) / 1000),
    };
    await writeJsonAtomic(join(dir, "manifest.json"), manifest);
    emit("done", { fraction: 1 });
    return { path: join(dir, "vmlinux"), version: key, key };
  } finally {
    await rm(buildRoot, { recursive: true, force: true });
  }
}

/** A fragment option that Kconfig silently dropped would give a kernel that cannot boot. */
async function checkConfigApplied(configPath: string) {
  const config = await readFile(configPath, "utf8");
  const fragment = await readFile(CONFIG_FRAGMENT, "utf8");
  const missing = fragment
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => /^CONFIG_\w+=y$/.test(l))
    .filter((l) => !config.split("\n").includes(l));
  if (missing.length) {
    throw new PyroError("internal", `kernel config lost options: ${missing.join(", ")}`);
  }
}

export async function installedPackageVersion(pkg: string): Promise<string | undefined> {
  const r = await runCommand("dpkg-query", ["-W", "-f", "${Version}", pkg]).catch(() => undefined);
  return r?.code === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

export async function fileSize(path: string): Promise<number | undefined> {
  return stat(path).then(
    (s) => s.size,
    () => undefined,
  );
}
