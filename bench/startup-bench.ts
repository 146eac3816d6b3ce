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
import { runChecked } from "../src/util/process.js";
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
 * A stand-in VMM for the shim case: the host-process driver runs `pyro-agent` from beside
 * the initramfs, and this one only leaves a mark and exits. The driver needs an ext4
 * state disk (it keys its tree on the disk's UUID); a tiny one does.
 */
interface ShimFixture {
  dir: string;
  agent: string;
  stateDisk: string;
}

async function shimFixture(): Promise<ShimFixture> {
  const dir = await mkdtemp(join(tmpdir(), "pyro-startup-shim-"));
  const agent = join(dir, "pyro-agent");
  await writeFile(agent, '#!/bin/sh\n: > "$0.ran"\n', { mode: 0o755 });
  const stateDisk = join(dir, "state.ext4");
  await runChecked("state disk", "mkfs.ext4", ["-q", "-F", stateDisk, "4M"]);
  return { dir, agent, stateDisk };
}

/** The first time `name` appears in `dir` (inotify), as `performance.now()`. */
function appearance(dir: string, name: string): Promise<number> {
  return new Promise((r) => {
    const watcher = watch(dir, (_event, file) => {
      if (file !== name) return;
      watcher.close();
      r(performance.now());
    });
  });
}

/**
 * `node dist/shim/main.js DIR` with the host driver and the stand-in VMM, two figures:
 * spawn until the VMM runs (what a guest's boot waits for), and spawn until the shim has
 * loaded everything and answers clients (its status file appears). The
 * stand-in exits at once, so the shim records a failed boot and exits by itself: its CPU
 * time includes that short failure path.
 */
async function shimRun(fixture: ShimFixture): Promise<[string, Sample][]> {
  const { dir, nodeArgs, env } = await scratch();
  try {
    await rm(`${fixture.agent}.ran`, { force: true });
    await writeFile(join(dir, "launch.json"), JSON.stringify(shimConfig(dir, fixture)));
    const vmmRan = appearance(fixture.dir, "pyro-agent.ran");
    const loaded = appearance(dir, "shim.json");
    const started = performance.now();
    // The host driver is for tests only, so the shim refuses it unless told.
    const child = spawn(process.execPath, [...nodeArgs, join(DIST, "shim", "main.js"), dir], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...env, PYRO_VMM: "host" },
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<undefined>((r) => child.on("exit", () => r(undefined)));
    const [ran, loadedAt] = await Promise.all(
      [vmmRan, loaded].map((seen) => Promise.race([seen, exited])),
    );
    await exited;
    if (ran === undefined || loadedAt === undefined)
      throw new Error(`the shim exited before it started its VMM and loaded: ${stderr}`);
    const cpuMs = Number(await readFile(env.PYRO_BENCH_CPU_FILE!, "utf8"));
    return [
      [SHIM_VMM, { wallMs: ran - started, cpuMs: NaN }],
      [SHIM_LOADED, { wallMs: loadedAt - started, cpuMs }],
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function shimConfig(dir: string, fixture: ShimFixture): ShimLaunchConfig {
  const missing = join(dir, "missing");
  return {
    vm_id: "vm_startupbench",
    kernel_path: missing,
    // The host driver runs the agent found beside the initramfs: the stand-in.
    initrd_path: join(fixture.dir, "initrd"),
    rootfs_path: missing,
    state_disk_path: fixture.stateDisk,
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
const SHIM_VMM = "shim to VMM start";
const SHIM_LOADED = "shim loaded";
const single = (name: string, run: () => Promise<Sample>) => async () =>
  [[name, await run()]] as [string, Sample][];

/** Each case runs one process and yields one figure or more. */
function cases(fixture: ShimFixture): (() => Promise<[string, Sample][]>)[] {
  return [
    single(BARE, () => processRun(["-e", "0"])),
    single("pyro --version", () => processRun([join(DIST, "cli", "main.js"), "--version"])),
    single('import("pyro-mcp")', () =>
      processRun(["--input-type=module", "-e", `await import(${sdkEntry})`]),
    ),
    () => shimRun(fixture),
  ];
}

/** Median wall and CPU milliseconds per figure, every case measured once per round. */
export async function startupFigures(runs = RUNS): Promise<Map<string, Sample>> {
  const fixture = await shimFixture();
  try {
    const all = cases(fixture);
    for (const once of all) await once(); // warms the page cache; not counted
    const samples = new Map<string, Sample[]>();
    for (let round = 0; round < runs; round++) {
      for (const once of all) {
        for (const [name, sample] of await once())
          samples.set(name, [...(samples.get(name) ?? []), sample]);
      }
    }
    return new Map(
      [...samples].map(([name, xs]) => [
        name,
        { wallMs: median(xs.map((x) => x.wallMs)), cpuMs: median(xs.map((x) => x.cpuMs)) },
      ]),
    );
  } finally {
    await rm(fixture.dir, { recursive: true, force: true });
  }
}

/**
 * The figures as lines: each case's medians and its cost over bare node. A figure taken
 * before its process ended (the shim's VMM start) has no CPU time of its own.
 */
export function startupReport(figures: Map<string, Sample>): string[] {
  const bare = figures.get(BARE)!;
  const ms = (value: number) => (Number.isNaN(value) ? "-" : value.toFixed(0)).padStart(4);
  const over = (value: number) =>
    `${value < 0 ? "" : "+"}${value.toFixed(0)} (${value <= TARGET_MS ? "ok" : "over"})`;
  return [...figures].map(([name, { wallMs, cpuMs }]) => {
    const head = `${name.padEnd(20)} wall ${ms(wallMs)} ms, cpu ${ms(cpuMs)} ms`;
    if (name === BARE) return head;
    const cpu = Number.isNaN(cpuMs) ? "" : `, cpu ${over(cpuMs - bare.cpuMs)}`;
    return `${head}  over node: wall ${over(wallMs - bare.wallMs)}${cpu}; target +${TARGET_MS}`;
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  // The load says how far to trust the wall figures on a shared machine.
  const load = loadavg()[0]!.toFixed(1);
  console.log(`start-up cost, ${RUNS} runs each, load average ${load} (dist/ of ${process.cwd()})`);
  for (const line of startupReport(await startupFigures())) console.log(line);
}
