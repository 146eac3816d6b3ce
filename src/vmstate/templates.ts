import { randomBytes } from "node:crypto";
import { copyFile, lstat, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { cachePaths, sha256File } from "../env/artifacts.js";
import { readJsonIfExists, writeJsonAtomic } from "../util/fs.js";
import { withLock } from "../util/lock.js";
import { isProcessAlive, runChecked } from "../util/process.js";
import { templateKey, type TemplateKeyInputs } from "./template-key.js";

/**
 * The memory-template cache (docs/architecture.md "Memory templates"):
 * `templates/<key>/{memory.ram,vmstate,template.json}` beside the environments. A template
 * is the RAM and device state of a VM parked before its root mount, so it fits any VM of
 * the same shape whatever its state disk holds.
 */
export function templatesRoot(): string {
  // Tests point this elsewhere so they can break templates without touching the shared cache.
  return process.env.PYRO_TEMPLATE_DIR || join(cachePaths.root(), "templates");
}

export function templateFiles(key: string, root = templatesRoot()) {
  const dir = join(root, key);
  return {
    dir,
    memory: join(dir, "memory.ram"),
    vmstate: join(dir, "vmstate"),
    manifest: join(dir, "template.json"),
    /** `late` templates: the state disk as it was at the save; clones get a byte copy. */
    stateDisk: join(dir, "state.ext4"),
    /** A failed build or restore: warm boots of this key wait out the retry delay. */
    failure: join(dir, "failed.json"),
  };
}

/** Written last (temp + rename): a template without it is unfinished. */
export interface TemplateManifest {
  key: string;
  inputs: TemplateKeyInputs;
  vmstate: { size_bytes: number; sha256: string };
  memory: { size_bytes: number };
  /** `late` templates only. */
  state_disk: { size_bytes: number } | null;
  built_at: string;
  build_ms: number;
}

export interface TemplateFailure {
  stage: "build" | "restore";
  error: string;
  failed_at: string;
}

/** A key that failed is not retried before this: a broken build would cost every boot. */
export const TEMPLATE_RETRY_MS = 10 * 60_000;

export type TemplateCheck =
  { ok: true; manifest: TemplateManifest } | { ok: false; missing: boolean; reason: string };

/**
 * Is the template whole? The manifest must name this key and hash to it, the vmstate must
 * match its size and sha256 (tens of KiB), and the RAM file its size (hashing a sparse
 * GiB on every boot would cost more than the template saves).
 */
export async function verifyTemplate(key: string, root = templatesRoot()): Promise<TemplateCheck> {
  const files = templateFiles(key, root);
  const manifest = await readJsonIfExists<TemplateManifest>(files.manifest).catch(() => null);
  if (manifest === undefined) return { ok: false, missing: true, reason: "no template yet" };
  const bad = (reason: string): TemplateCheck => ({ ok: false, missing: false, reason });
  if (manifest === null || typeof manifest !== "object") return bad("template.json is unreadable");
  // Inputs that no longer hash (absent, or not JSON-shaped) are a manifest of another key.
  if (
    manifest.key !== key ||
    typeof manifest.inputs !== "object" ||
    templateKey(manifest.inputs) !== key
  ) {
    return bad("template.json was built for another key");
  }
  const vmstateSize = await sizeOf(files.vmstate);
  if (vmstateSize !== manifest.vmstate?.size_bytes) {
    return bad(`vmstate is ${vmstateSize} bytes, expected ${manifest.vmstate?.size_bytes}`);
  }
  const memorySize = await sizeOf(files.memory);
  if (memorySize !== manifest.memory?.size_bytes) {
    return bad(`memory.ram is ${memorySize} bytes, expected ${manifest.memory?.size_bytes}`);
  }
  if (manifest.inputs.kind === "late") {
    const diskSize = await sizeOf(files.stateDisk);
    if (diskSize !== manifest.state_disk?.size_bytes) {
      return bad(`state.ext4 is ${diskSize} bytes, expected ${manifest.state_disk?.size_bytes}`);
    }
  }
  if ((await sha256File(files.vmstate)) !== manifest.vmstate.sha256) {
    return bad("vmstate does not match its sha256");
  }
  return { ok: true, manifest };
}

async function sizeOf(path: string): Promise<number> {
  return stat(path).then(
    (s) => (s.isFile() ? s.size : -1),
    () => -1,
  );
}

/** What a build leaves in its directory; the manifest is written by {@link ensureTemplate}. */
export type TemplateBuilder = (dir: string) => Promise<void>;

export type TemplateResult =
  | { ok: true; key: string; manifest: TemplateManifest; built: boolean }
  | { ok: false; key: string; reason: string };

export interface EnsureOptions {
  root?: string;
  /** Told once, when this call is the one that builds. */
  onBuild?: () => void;
  /** Told when another process holds the build lock. */
  onWait?: (pid: number) => void;
  now?: () => number;
  /** Build now even if a build or restore of this key failed lately (`pyro env pull`). */
  retryFailed?: boolean;
}

/**
 * The template for these inputs, built on first use. Builds are serialised per key
 * across processes, so racing first boots build once: the others wait, then verify.
 * A damaged template is removed and reported (this boot goes cold; the next one
 * rebuilds it). A build that fails is remembered for {@link TEMPLATE_RETRY_MS}.
 */
export async function ensureTemplate(
  inputs: TemplateKeyInputs,
  build: TemplateBuilder,
  options: EnsureOptions = {},
): Promise<TemplateResult> {
  const root = options.root ?? templatesRoot();
  const key = templateKey(inputs);
  const files = templateFiles(key, root);
  const first = await verifyTemplate(key, root);
  if (first.ok) return { ok: true, key, manifest: first.manifest, built: false };
  const lock = join(cachePaths.locks(), `template-${key}.lock`);
  return withLock(
    lock,
    async (): Promise<TemplateResult> => {
      const check = await verifyTemplate(key, root);
      if (check.ok) return { ok: true, key, manifest: check.manifest, built: false };
      const failure = await readJsonIfExists<TemplateFailure>(files.failure).catch(() => undefined);
      const now = options.now?.() ?? Date.now();
      const recent = failure && now - Date.parse(failure.failed_at) < TEMPLATE_RETRY_MS;
      if (failure && recent && !options.retryFailed) {
        return { ok: false, key, reason: failureReason(failure) };
      }
      if (!check.missing && !failure) {
        await rm(files.dir, { recursive: true, force: true });
        return {
          ok: false,
          key,
          reason: `the memory template was damaged (${check.reason}); removed, the next boot rebuilds it`,
        };
      }
      options.onBuild?.();
      return buildInto(key, inputs, build, root);
    },
    { ...(options.onWait ? { onWait: options.onWait } : {}), timeoutMs: 5 * 60_000 },
  );
}

function failureReason(failure: TemplateFailure): string {
  const what = failure.stage === "build" ? "building" : "restoring";
  return `${what} the memory template failed at ${failure.failed_at} (${failure.error}); retried after ${TEMPLATE_RETRY_MS / 60_000} minutes or after \`pyro env prune\``;
}

/** Builds in a scratch directory beside the cache entry, then renames it into place. */
async function buildInto(
  key: string,
  inputs: TemplateKeyInputs,
  build: TemplateBuilder,
  root: string,
): Promise<TemplateResult> {
  const files = templateFiles(key, root);
  const scratch = join(
    root,
    `.build-${key.slice(0, 16)}-${process.pid}-${randomBytes(3).toString("hex")}`,
  );
  const started = performance.now();
  await mkdir(scratch, { recursive: true, mode: 0o700 });
  try {
    await build(scratch);
    const built = templateFiles("", scratch);
    const manifest: TemplateManifest = {
      key,
      inputs,
      vmstate: { size_bytes: await sizeOf(built.vmstate), sha256: await sha256File(built.vmstate) },
      memory: { size_bytes: await sizeOf(built.memory) },
      state_disk: inputs.kind === "late" ? { size_bytes: await sizeOf(built.stateDisk) } : null,
      built_at: new Date().toISOString(),
      build_ms: Math.round(performance.now() - started),
    };
    await writeJsonAtomic(join(scratch, "template.json"), manifest, 0o644);
    await rm(files.dir, { recursive: true, force: true });
    await rename(scratch, files.dir);
    return { ok: true, key, manifest, built: true };
  } catch (error) {
    await rm(scratch, { recursive: true, force: true });
    const message = error instanceof Error ? error.message : String(error);
    await recordTemplateFailure(key, "build", message, root);
    return { ok: false, key, reason: `building the memory template failed: ${message}` };
  }
}

/**
 * Remembers that a template could not be built or restored; a restore failure also
 * removes the template, so the retry after the delay starts from a fresh build.
 */
export async function recordTemplateFailure(
  key: string,
  stage: TemplateFailure["stage"],
  error: string,
  root = templatesRoot(),
): Promise<void> {
  const files = templateFiles(key, root);
  if (stage === "restore") await rm(files.dir, { recursive: true, force: true });
  const failure: TemplateFailure = {
    stage,
    error: error.slice(0, 2000),
    failed_at: new Date().toISOString(),
  };
  await writeJsonAtomic(files.failure, failure, 0o644);
}

export interface TemplateEntry {
  key: string;
  path: string;
  manifest: TemplateManifest | undefined;
  failure: TemplateFailure | undefined;
  /** Bytes on disk (the RAM file is sparse: far below its size). */
  disk_bytes: number;
}

/** Every entry of the cache, finished or not, with leftover build directories last. */
export async function listTemplates(root = templatesRoot()): Promise<TemplateEntry[]> {
  const entries: TemplateEntry[] = [];
  for (const name of (await readdir(root).catch(() => [])).sort()) {
    const path = join(root, name);
    const files = templateFiles(name, root);
    entries.push({
      key: name,
      path,
      manifest: await readJsonIfExists<TemplateManifest>(files.manifest).catch(() => undefined),
      failure: await readJsonIfExists<TemplateFailure>(files.failure).catch(() => undefined),
      disk_bytes: await diskBytes(path),
    });
  }
  return entries;
}

async function diskBytes(path: string): Promise<number> {
  const info = await lstat(path).catch(() => undefined);
  if (!info) return 0;
  if (!info.isDirectory()) return info.blocks * 512;
  let total = 0;
  for (const name of await readdir(path).catch(() => []))
    total += await diskBytes(join(path, name));
  return total;
}

/** Where a clone's copy of the template's device state goes in its VM directory. */
export const CLONE_VMSTATE = "template.vmstate";

/** Where a clone's copies go; `stateDisk` only for a `late` template. */
export interface CloneTarget {
  memory: string;
  vmstate: string;
  stateDisk?: string;
}

/**
 * Gives a VM a private copy of the template: its RAM file (and a `late` template's state
 * disk) as sparse copies (only the blocks the parked guest touched take disk and time; a
 * reflink where the filesystem has them) and the device state. Private, so no clone can
 * write what another clone maps (design decision 1), and a template replaced later never
 * changes a VM that started from it.
 */
export async function cloneTemplate(
  key: string,
  target: CloneTarget,
  root = templatesRoot(),
): Promise<void> {
  const files = templateFiles(key, root);
  const copies: [string, string][] = [[files.memory, target.memory]];
  if (target.stateDisk) copies.push([files.stateDisk, target.stateDisk]);
  await Promise.all(
    copies.map(async ([from, to]) => {
      await rm(to, { force: true });
      await runChecked("copy the memory template", "cp", [
        "--sparse=always",
        "--reflink=auto",
        from,
        to,
      ]);
    }),
  );
  await copyFile(files.vmstate, target.vmstate);
}

/**
 * Removes what no boot will use: templates `isCurrent` rejects (built for another QEMU,
 * kernel, agent or environment image), remembered failures, unfinished entries, and
 * scratch directories of builds whose process is gone.
 */
export async function pruneTemplates(
  isCurrent: (manifest: TemplateManifest) => Promise<boolean>,
  root = templatesRoot(),
): Promise<{ removed: string[]; freed_bytes: number }> {
  const removed: string[] = [];
  let freed = 0;
  for (const entry of await listTemplates(root)) {
    if (entry.key.startsWith(".build-")) {
      const pid = Number(/-(\d+)-[0-9a-f]+$/.exec(entry.key)?.[1]);
      if (pid > 0 && isProcessAlive(pid)) continue;
    } else if (entry.manifest && !entry.failure && (await isCurrent(entry.manifest))) {
      continue;
    }
    freed += entry.disk_bytes;
    await rm(entry.path, { recursive: true, force: true });
    removed.push(entry.path);
  }
  return { removed, freed_bytes: freed };
}
