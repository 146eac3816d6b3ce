import { chmod, cp, mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { readJsonIfExists, writeJsonAtomic } from "../util/fs.js";
import { withLock } from "../util/lock.js";
import { packageRoot } from "../util/paths.js";
import { runChecked } from "../util/process.js";
import type { ProgressSink } from "../util/progress.js";
import { cachePaths, sha256Text } from "./artifacts.js";

const AGENT_SOURCE = join(packageRoot, "agent");
/** Directories the agent expects on its initramfs before it mounts anything. */
const INITRAMFS_DIRS = [
  "dev",
  "proc",
  "sys",
  "run",
  "tmp",
  "mnt",
  "mnt/base",
  "mnt/state",
  "newroot",
];

export interface AgentArtifact {
  /** The static agent binary (also runnable on the host for tests). */
  binary: string;
  /** newc cpio whose `/init` is the agent. */
  initramfs: string;
  version: string;
}

/** Agent version = package version + hash of its sources, so any edit rebuilds it. */
let memoVersion: Promise<string> | undefined;

/** Memoised per process: the sources of a running pyro do not change under it. */
export function agentVersion(): Promise<string> {
  memoVersion ??= computeAgentVersion();
  memoVersion.catch(() => (memoVersion = undefined));
  return memoVersion;
}

async function computeAgentVersion(): Promise<string> {
  const files = (await readdir(join(AGENT_SOURCE, "src"))).filter((f) => /\.[ch]$/.test(f)).sort();
  const parts = [await readFile(join(AGENT_SOURCE, "Makefile"), "utf8")];
  for (const file of files)
    parts.push(file, await readFile(join(AGENT_SOURCE, "src", file), "utf8"));
  const pkg = JSON.parse(await readFile(join(packageRoot, "package.json"), "utf8")) as {
    version: string;
  };
  return `${pkg.version}+${sha256Text(...parts).slice(0, 12)}`;
}

export async function cachedAgent(): Promise<AgentArtifact | undefined> {
  const version = await agentVersion();
  const dir = join(cachePaths.agents(), version);
  if (!(await readJsonIfExists(join(dir, "manifest.json")))) return undefined;
  return { binary: join(dir, "pyro-agent"), initramfs: join(dir, "initramfs.cpio"), version };
}

/** Builds the agent with the host's gcc (a few seconds) unless this version is cached. */
export async function ensureAgent(progress: ProgressSink): Promise<AgentArtifact> {
  const found = await cachedAgent();
  if (found) return found;
  const version = await agentVersion();
  return withLock(join(cachePaths.locks(), `agent-${version}.lock`), async () => {
    return (await cachedAgent()) ?? buildAgent(version, progress);
  });
}

async function buildAgent(version: string, progress: ProgressSink): Promise<AgentArtifact> {
  const work = join(cachePaths.builds(), `agent-${version}-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  try {
    progress({ scope: "agent", phase: "compile", fields: { version } });
    await mkdir(work, { recursive: true });
    await cp(join(AGENT_SOURCE, "src"), join(work, "src"), { recursive: true });
    await cp(join(AGENT_SOURCE, "Makefile"), join(work, "Makefile"));
    await runChecked("build the guest agent", "make", ["-C", work, `AGENT_VERSION=${version}`]);
    progress({ scope: "agent", phase: "initramfs", fields: { version } });
    const staging = join(work, "initramfs");
    for (const dir of INITRAMFS_DIRS) await mkdir(join(staging, dir), { recursive: true });
    await cp(join(work, "build", "pyro-agent"), join(staging, "init"));
    await chmod(join(staging, "init"), 0o755);
    const cpio = join(work, "initramfs.cpio");
    // The kernel's built-in initramfs already provides /dev/console; the rest is ours.
    await runChecked("pack the initramfs", "sh", [
      "-c",
      'cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --reproducible --quiet > "$2"',
      "sh",
      staging,
      cpio,
    ]);
    const dir = join(cachePaths.agents(), version);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await rename(join(work, "build", "pyro-agent"), join(dir, "pyro-agent"));
    await rename(cpio, join(dir, "initramfs.cpio"));
    await writeJsonAtomic(join(dir, "manifest.json"), {
      version,
      built_at: new Date().toISOString(),
    });
    return { binary: join(dir, "pyro-agent"), initramfs: join(dir, "initramfs.cpio"), version };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
