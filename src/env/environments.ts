import { lstat, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { isPyroError, PyroError } from "../contract/errors.js";
import { readJsonIfExists, writeJsonAtomic } from "../util/fs.js";
import { withLock } from "../util/lock.js";
import type { ProgressSink } from "../util/progress.js";
import { ensureAgent, type AgentArtifact, agentVersion } from "./agent.js";
import { cachePaths, sha256File, slug } from "./artifacts.js";
import { detachMountsBelow, removeBuildDir } from "./build-dir.js";
import { environmentNames, findRecipe, recipes, type Recipe } from "./catalog.js";
import { ensureKernel, kernelKey, type KernelArtifact } from "./kernel.js";
import { buildRootfsImage, prepareWorkDir } from "./rootfs.js";

export interface EnvironmentManifest {
  name: string;
  description: string;
  recipe_digest: string;
  suite: string;
  packages: { name: string; version: string }[];
  image_size_bytes: number;
  image_sha256: string;
  kernel_version: string;
  agent_version: string;
  mirror: string;
  built_at: string;
  build_seconds: number;
}

/** Everything needed to boot a VM of one environment. */
export interface BootArtifacts {
  environment: string;
  rootfs: string;
  manifest: EnvironmentManifest;
  kernel: KernelArtifact;
  agent: AgentArtifact;
}

function environmentDir(recipe: Recipe): string {
  return join(cachePaths.environments(), slug(recipe.name), recipe.digest);
}

async function readManifest(recipe: Recipe): Promise<EnvironmentManifest | undefined> {
  return readJsonIfExists<EnvironmentManifest>(join(environmentDir(recipe), "manifest.json"));
}

/**
 * Is the cached image whole? The cheap check (size) runs on every boot; `verifyDigest`
 * (a full read) runs on `pull`, which is how a corrupt cache gets repaired.
 */
async function isIntact(recipe: Recipe, manifest: EnvironmentManifest, verifyDigest: boolean) {
  const image = join(environmentDir(recipe), "rootfs.ext4");
  const size = await stat(image).then(
    (s) => s.size,
    () => -1,
  );
  if (size !== manifest.image_size_bytes) return false;
  return !verifyDigest || (await sha256File(image)) === manifest.image_sha256;
}

export interface PullResult {
  environment: string;
  status: "cached" | "built" | "repaired";
  manifest: EnvironmentManifest;
}

/** Builds the environment (and the kernel and agent it boots with) unless cached and intact. */
export async function pullEnvironment(
  name: string,
  progress: ProgressSink,
  options: { verifyDigest?: boolean } = {},
): Promise<PullResult> {
  const recipe = findRecipe(name);
  const verify = options.verifyDigest ?? true;
  await ensureKernel(progress);
  await ensureAgent(progress);
  return withBuildLock(recipe, progress, async () => {
    const existing = await readManifest(recipe);
    if (existing && (await isIntact(recipe, existing, verify))) {
      return { environment: name, status: "cached" as const, manifest: existing };
    }
    if (existing) progress({ scope: "pull", phase: "repair", fields: { environment: name } });
    const manifest = await buildEnvironment(recipe, progress);
    return {
      environment: name,
      status: existing ? ("repaired" as const) : ("built" as const),
      manifest,
    };
  });
}

/**
 * One build of an environment at a time, across processes. A second pull waits for the
 * first (two `pyro run`s on an empty cache build once); a build whose process died is
 * taken over at once. Waiting too long for a live one is a `conflict` that says so.
 */
export async function withBuildLock<T>(
  recipe: Recipe,
  progress: ProgressSink,
  build: () => Promise<T>,
  options: { timeoutMs?: number } = {},
): Promise<T> {
  const lock = join(cachePaths.locks(), `env-${slug(recipe.name)}-${recipe.digest}.lock`);
  const environment = recipe.name;
  try {
    return await withLock(lock, build, {
      ...options,
      onWait: (pid) =>
        progress({ scope: "pull", phase: "wait-lock", fields: { environment, pid } }),
    });
  } catch (error) {
    if (!isPyroError(error) || error.code !== "conflict" || error.details.lock !== lock)
      throw error;
    const pid = error.details.holder_pid;
    throw new PyroError(
      "conflict",
      `another build of environment ${environment} is running (process ${pid}) and did not ` +
        `finish while this pull waited; pull again once it is done, or, if that process is ` +
        `stuck, stop it (kill ${pid}) and pull again: an interrupted build is cleaned up`,
      { details: { environment, holder_pid: pid, lock }, cause: error },
    );
  }
}

async function buildEnvironment(recipe: Recipe, progress: ProgressSink) {
  const started = Date.now();
  const work = join(cachePaths.builds(), `env-${slug(recipe.name)}-${recipe.digest}`);
  await prepareWorkDir(work);
  try {
    const image = await buildRootfsImage(recipe, work, progress);
    const dir = environmentDir(recipe);
    await rm(dir, { recursive: true, force: true });
    await prepareWorkDir(dir);
    await rename(image.imagePath, join(dir, "rootfs.ext4"));
    const manifest: EnvironmentManifest = {
      name: recipe.name,
      description: recipe.description,
      recipe_digest: recipe.digest,
      suite: recipe.suite,
      packages: image.packages,
      image_size_bytes: image.sizeBytes,
      image_sha256: image.sha256,
      kernel_version: (await kernelKey()).key,
      agent_version: await agentVersion(),
      mirror: image.mirror,
      built_at: new Date().toISOString(),
      build_seconds: Math.round((Date.now() - started) / 1000),
    };
    // The manifest is written last: its presence is what marks the entry complete.
    await writeJsonAtomic(join(dir, "manifest.json"), manifest);
    progress({ scope: "pull", phase: "done", fields: { environment: recipe.name } });
    return manifest;
  } finally {
    await removeBuildDir(work);
  }
}

/** Resolves what a boot needs, pulling on first use. */
export async function bootArtifacts(name: string, progress: ProgressSink): Promise<BootArtifacts> {
  const recipe = findRecipe(name);
  let manifest = await readManifest(recipe);
  if (!manifest || !(await isIntact(recipe, manifest, false))) {
    manifest = (await pullEnvironment(name, progress, { verifyDigest: false })).manifest;
  }
  return {
    environment: name,
    rootfs: join(environmentDir(recipe), "rootfs.ext4"),
    manifest,
    kernel: await ensureKernel(progress),
    agent: await ensureAgent(progress),
  };
}

export interface EnvironmentSummary {
  name: string;
  description: string;
  installed: boolean;
  packages: string[];
  image_size_bytes: number | null;
}

export async function listEnvironments(): Promise<EnvironmentSummary[]> {
  const out: EnvironmentSummary[] = [];
  for (const recipe of recipes().values()) {
    const manifest = await readManifest(recipe);
    const installed = manifest !== undefined && (await isIntact(recipe, manifest, false));
    out.push({
      name: recipe.name,
      description: recipe.description,
      installed,
      packages: recipe.packages,
      image_size_bytes: installed ? manifest.image_size_bytes : null,
    });
  }
  return out;
}

export async function inspectEnvironment(name: string) {
  const recipe = findRecipe(name);
  const manifest = await readManifest(recipe);
  const installed = manifest !== undefined && (await isIntact(recipe, manifest, false));
  return {
    name,
    description: recipe.description,
    installed,
    recipe: {
      suite: recipe.suite,
      variant: recipe.variant,
      packages: recipe.packages,
      digest: recipe.digest,
    },
    image_path: installed ? join(environmentDir(recipe), "rootfs.ext4") : null,
    manifest: installed ? manifest : null,
  };
}

/** Removes cache entries no current recipe, kernel or agent uses, and leftover build dirs. */
export async function pruneEnvironments() {
  const removed: string[] = [];
  let freed = 0;
  const drop = async (path: string) => {
    freed += await diskUsage(path);
    await rm(path, { recursive: true, force: true });
    removed.push(path);
  };
  const keep = new Map([...recipes().values()].map((r) => [slug(r.name), r.digest]));
  for (const envSlug of await listDir(cachePaths.environments())) {
    for (const digest of await listDir(join(cachePaths.environments(), envSlug))) {
      if (keep.get(envSlug) !== digest)
        await drop(join(cachePaths.environments(), envSlug, digest));
    }
  }
  const kernel = await kernelKey().then(
    (k) => k.key,
    () => undefined,
  );
  for (const entry of await listDir(cachePaths.kernels())) {
    if (entry !== kernel) await drop(join(cachePaths.kernels(), entry));
  }
  const agent = await agentVersion();
  for (const entry of await listDir(cachePaths.agents())) {
    if (entry !== agent) await drop(join(cachePaths.agents(), entry));
  }
  const locks = await listDir(cachePaths.locks());
  if (locks.length === 0) {
    for (const entry of await listDir(cachePaths.builds())) {
      // An interrupted build's tree may still hold mounts: never measure or delete
      // through them (a mounted /proc alone would be walked for minutes).
      await detachMountsBelow(join(cachePaths.builds(), entry));
      await drop(join(cachePaths.builds(), entry));
    }
  }
  return { removed, freed_bytes: freed, environments: environmentNames() };
}

async function listDir(path: string): Promise<string[]> {
  return readdir(path).catch(() => []);
}

/** Bytes on disk below `path`; links are counted, never followed (a build tree has many). */
async function diskUsage(path: string): Promise<number> {
  const info = await lstat(path).catch(() => undefined);
  if (!info) return 0;
  if (!info.isDirectory()) return info.blocks * 512;
  let total = 0;
  for (const entry of await listDir(path)) total += await diskUsage(join(path, entry));
  return total;
}
