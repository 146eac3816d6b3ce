/**
 * `npm run bench:startup`: what pyro's own processes cost before they do any work, against
 * bare `node` on the same machine in the same run (issue 10, "Start-up cost"). Target:
 * each case within 60 ms of `node -e 0`.
 *
 * Two figures per case. Wall: spawn to exit (for the shim: to the moment it serves
 * clients), rounds interleaved so a busy neighbour slows every case alike. CPU: the
 * process's own user + system time, reported by a small `--import` hook at exit; on a
 * shared machine it moves far less with the load than wall time does.
 */
import { spawn } from "node:child_process";
import { watch } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { ShimLaunchConfig } from "../src/shim/launch.js";
import { median } from "./measure.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const TARGET_MS = 60;
const DIST = resolve("dist");
const BARE = "node -e 0";

interface Sample {
  wallMs: number;
  cpuMs: number;
}

/** Written into the child by `--import`: its CPU time at exit, into the file it is told. */
const CPU_HOOK = `import { writeFileSync } from "node:fs";
const file = process.env.PYRO_BENCH_CPU_FILE;
process.on("exit", () => {
  const { user, system } = process.cpuUsage();
  writeFileSync(file, String((user + system) / 1000));
});
`;

/** A scratch directory with the CPU hook; every run gets a fresh one. */
async function scratch(): Promise<{ dir: string; nodeArgs: string[]; env: NodeJS.ProcessEnv }> {
  const dir = await mkdtemp(join(tmpdir(), "pyro-startup-"));
  const hook = join(dir, "cpu-hook.mjs");
  await writeFile(hook, CPU_HOOK);
  const env = { ...process.env, PYRO_BENCH_CPU_FILE: join(dir, "cpu") };
  return { dir, nodeArgs: ["--import", pathToFileURL(hook).href], env };
}

/** `node ARGS` from spawn to exit, failing loudly if the process fails. */
async function processRun(args: string[]): Promise<Sample> {
  const { dir, nodeArgs, env } = await scratch();
  try {
    const started = performance.now();
    const child = spawn(process.execPath, [...nodeArgs, ...args], {
      stdio: ["ignore", "ignore", "pipe"],
      env,
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    const wallMs = performance.now() - started;
    if (code !== 0) throw new Error(`node ${args.join(" ")} exited ${code}: ${stderr}`);
    return { wallMs, cpuMs: Number(await readFile(env.PYRO_BENCH_CPU_FILE!, "utf8")) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `node dist/shim/main.js DIR` until its status file appears: by then it has read its
 * launch config, picked its driver and serves clients, so what remains is the VM's own
 * boot. The launch names no real VM (host driver, missing files): the shim records the
 * failed boot and exits by itself, so its CPU time includes that short failure path.
 */
async function shimRun(): Promise<Sample> {
  const { dir, nodeArgs, env } = await scratch();
  try {
    await writeFile(join(dir, "launch.json"), JSON.stringify(shimConfig(dir)));
    const written = new Promise<number>((r) => {
      const watcher = watch(dir, (_event, file) => {
        if (file !== "shim.json") return;
        watcher.close();
        r(performance.now());
      });
    });
    const started = performance.now();
    // The host driver is for tests only, so the shim refuses it unless told.
    const child = spawn(process.execPath, [...nodeArgs, join(DIST, "shim", "main.js"), dir], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...env, PYRO_VMM: "host" },
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<void>((r) => child.on("exit", () => r()));
    const first = await Promise.race([written, exited.then(() => undefined)]);
    await exited;
    if (first === undefined) throw new Error(`the shim exited before serving clients: ${stderr}`);
    return {
      wallMs: first - started,
      cpuMs: Number(await readFile(env.PYRO_BENCH_CPU_FILE!, "utf8")),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function shimConfig(dir: string): ShimLaunchConfig {
  const missing = join(dir, "missing");
  return {
    vm_id: "vm_startupbench",
    kernel_path: missing,
    initrd_path: missing,
    rootfs_path: missing,
    state_disk_path: missing,
    vcpu_count: 1,
    mem_mib: 64,
    acceleration: "tcg",
    vmm: "host",
    hostname: "bench",
    kernel_args: [],
    ttl_seconds: 0,
    ttl_action: "delete",
    boot_timeout_ms: 1000,
    workspace_root: null,
    delete_on_exit: false,
    owner_pid: null,
  };
}

const sdkEntry = JSON.stringify(pathToFileURL(join(DIST, "index.js")).href);
const CASES: [string, () => Promise<Sample>][] = [
  [BARE, () => processRun(["-e", "0"])],
  ["pyro --version", () => processRun([join(DIST, "cli", "main.js"), "--version"])],
  [
    'import("pyro-mcp")',
    () => processRun(["--input-type=module", "-e", `await import(${sdkEntry})`]),
  ],
  ["shim start", shimRun],
];

/** Median wall and CPU milliseconds per case, every case measured once per round. */
export async function startupFigures(runs = RUNS): Promise<Map<string, Sample>> {
  const samples = new Map(CASES.map(([name]) => [name, [] as Sample[]]));
  for (const [, once] of CASES) await once(); // warms the page cache; not counted
  for (let round = 0; round < runs; round++) {
    for (const [name, once] of CASES) samples.get(name)!.push(await once());
  }
  return new Map(
    [...samples].map(([name, xs]) => [
      name,
      { wallMs: median(xs.map((x) => x.wallMs)), cpuMs: median(xs.map((x) => x.cpuMs)) },
    ]),
  );
}

/** The figures as lines: each case's medians and its cost over bare node. */
export function startupReport(figures: Map<string, Sample>): string[] {
  const bare = figures.get(BARE)!;
  return [...figures].map(([name, { wallMs, cpuMs }]) => {
    const head = `${name.padEnd(20)} wall ${wallMs.toFixed(0).padStart(4)} ms, cpu ${cpuMs.toFixed(0).padStart(4)} ms`;
    if (name === BARE) return head;
    const overWall = wallMs - bare.wallMs;
    const overCpu = cpuMs - bare.cpuMs;
    const over = (ms: number) =>
      `${ms < 0 ? "" : "+"}${ms.toFixed(0)} (${ms <= TARGET_MS ? "ok" : "over"})`;
    return `${head}  over node: wall ${over(overWall)}, cpu ${over(overCpu)}; target +${TARGET_MS}`;
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  // The load says how far to trust the wall figures on a shared machine.
  const load = loadavg()[0]!.toFixed(1);
  console.log(`start-up cost, ${RUNS} runs each, load average ${load} (dist/ of ${process.cwd()})`);
  for (const line of startupReport(await startupFigures())) console.log(line);
}
