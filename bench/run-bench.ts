/**
 * `npm run bench`: pyro's overhead against the floor, measured in one run so the ratio
 * holds on a noisy machine. Floor = the same QEMU, kernel, initramfs and base image booted
 * to an answering agent and powered off, driven by a few raw socket writes (no pyro code
 * in the path). Pyro = `pyro run debian:12-base -- true` through the CLI.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { bootArtifacts } from "../src/env/environments.js";
import { encodeControl, FrameReader } from "../src/guest/frame.js";
import { runChecked, sleep } from "../src/util/process.js";
import { hostTscKhz, qemuArgs, qemuInheritedFiles } from "../src/vmm/qemu.js";
import { readAccelerationFacts, decideAcceleration } from "../src/vmm/acceleration.js";
import { median } from "./measure.js";
import { startupFigures, startupReport } from "./startup-bench.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const CLI = resolve("dist/cli/main.js");

async function floorRun(work: string, artifacts: Awaited<ReturnType<typeof bootArtifacts>>) {
  const dir = await mkdtemp(join(work, "floor-"));
  const stateDisk = join(dir, "state.ext4");
  await runChecked("state disk", "mkfs.ext4", [
    "-q",
    "-F",
    "-L",
    "pyro-state",
    "-E",
    "lazy_itable_init=1,lazy_journal_init=1",
    stateDisk,
    "8G",
  ]);
  const spec = {
    vmId: "floor",
    kernelPath: artifacts.kernel.path,
    initrdPath: artifacts.agent.initramfs,
    kernelArgs: ["pyro.hostname=floor"],
    vcpuCount: 1,
    memMib: 1024,
    acceleration: decideAcceleration(await readAccelerationFacts()).acceleration,
    disks: [
      { path: artifacts.rootfs, readOnly: true },
      { path: stateDisk, readOnly: false },
    ],
    agentSocketPath: join(dir, "agent.sock"),
    controlSocketPath: join(dir, "vmm.sock"),
    consoleLogPath: join(dir, "console.log"),
  };
  // QEMU takes its channels (socket pairs) and files as inherited fds (vmm/qemu.ts).
  const files = qemuInheritedFiles(spec).map((file) => openSync(file.path, file.flags));
  const started = performance.now();
  const args = qemuArgs(spec, hostTscKhz());
  const qemu = spawn("qemu-system-x86_64", args, {
    stdio: ["ignore", "ignore", "ignore", "pipe", "pipe", "pipe", ...files],
  });
  files.forEach((fd) => closeSync(fd));
  const exited = new Promise((r) => qemu.on("exit", r));
  const socketAt = (fd: number) => qemu.stdio[fd as 3] as Socket;
  const agent = socketAt(4);
  socketAt(3).resume(); // QMP greets; nobody needs to answer.
  socketAt(5).resume(); // the console
  const reader = new FrameReader();
  const replies: number[] = [];
  let wake = () => {};
  agent.on("data", (chunk: Buffer) => {
    for (const frame of reader.push(chunk)) replies.push(frame.channel);
    wake();
  });
  const awaitReply = async (channel: number) => {
    while (!replies.includes(channel)) await new Promise<void>((r) => (wake = r));
  };
  agent.write(encodeControl(1, { op: "hello" }));
  await awaitReply(1);
  const readyMs = performance.now() - started;
  agent.write(encodeControl(2, { op: "shutdown", power_off: true }));
  await exited;
  const totalMs = performance.now() - started;
  await rm(dir, { recursive: true, force: true });
  return { readyMs, totalMs };
}

function pyroRun(home: string): Promise<{ totalMs: number; payload: Record<string, unknown> }> {
  const started = performance.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, "run", "debian:12-base", "--json", "--", "true"], {
      env: { ...process.env, PYRO_HOME: home },
      stdio: ["ignore", "pipe", "ignore"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c));
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`pyro run exited ${code}: ${out}`));
      resolvePromise({ totalMs: performance.now() - started, payload: JSON.parse(out) });
    });
  });
}

async function idleMemory(home: string): Promise<number> {
  const child = spawn(process.execPath, [CLI, "run", "debian:12-base", "--", "sleep", "30"], {
    env: { ...process.env, PYRO_HOME: home },
    stdio: "ignore",
  });
  for (let i = 0; i < 600; i++) {
    const [dir] = await readdir(join(home, "vms")).catch(() => []);
    const status =
      dir && (await readFile(join(home, "vms", dir, "shim.json"), "utf8").catch(() => ""));
    if (status && JSON.parse(status).state === "ready") break;
    await sleep(100);
  }
  await sleep(1000);
  let rssKib = 0;
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (!cmdline.includes(home) || cmdline.includes("cli/main.js")) continue;
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
    rssKib += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  }
  child.kill("SIGKILL");
  return rssKib / 1024;
}

async function main() {
  const artifacts = await bootArtifacts("debian:12-base", () => {});
  const work = await mkdtemp(join(tmpdir(), "pyro-bench-"));
  const floor: { readyMs: number; totalMs: number }[] = [];
  const runs: Awaited<ReturnType<typeof pyroRun>>[] = [];
  await floorRun(work, artifacts); // warm the page cache for both sides
  await pyroRun(work);
  for (let i = 0; i < RUNS; i++) {
    floor.push(await floorRun(work, artifacts));
    runs.push(await pyroRun(work));
  }
  const floorMs = median(floor.map((f) => f.totalMs));
  const pyroMs = median(runs.map((r) => r.totalMs));
  const timing = (key: string) =>
    median(runs.map((r) => (r.payload.timings as Record<string, number>)[key]!));
  console.log(`acceleration: ${String(runs[0]!.payload.acceleration)}, runs: ${RUNS} each`);
  console.log(
    `floor  (boot to agent, power off): median ${floorMs.toFixed(0)} ms (agent ready ${median(floor.map((f) => f.readyMs)).toFixed(0)} ms)`,
  );
  console.log(`pyro run debian:12-base -- true:   median ${pyroMs.toFixed(0)} ms`);
  console.log(`ratio pyro/floor: ${(pyroMs / floorMs).toFixed(2)} (target <= 1.50)`);
  console.log(
    `pyro timings (median ms): ${["vmm_start_ms", "boot_ms", "agent_ready_ms", "exec_ms", "teardown_ms"].map((k) => `${k}=${timing(k)}`).join(" ")}`,
  );
  console.log(`idle VM host memory (shim + VMM RSS): ${(await idleMemory(work)).toFixed(0)} MiB`);
  for (const line of startupReport(await startupFigures())) console.log(`start-up: ${line}`);
  await rm(work, { recursive: true, force: true });
}

await main();
