/**
 * Host memory of idle VMs for `npm run bench` (issue 10): the PSS of each VM's shim and VMM
 * process, read from /proc/PID/smaps_rollup. PSS, not RSS: a page shared by N processes
 * counts 1/N in each, so pages shared between VMs (libraries, a template's RAM where the
 * VMs map the same file) are not counted once per VM.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { sleep } from "../src/util/process.js";
import { BENCH_ENVIRONMENT, CLI } from "./pyro-cli.js";

const READY_TIMEOUT_MS = 180_000;
const GONE_TIMEOUT_MS = 30_000;
/** After `ready` the guest still settles (its init's last work, the shim's first timers). */
const SETTLE_MS = 1_500;

/** One idle VM's processes, in MiB. */
export interface VmMemory {
  bootMode: string;
  shimPss: number;
  vmmPss: number;
  shimRss: number;
  vmmRss: number;
}

interface ShimStatusFile {
  state: string;
  shim_pid: number;
  vmm_pid: number | null;
  boot_mode?: string;
}

/**
 * Starts `count` VMs at once (`pyro run ENV FLAGS -- sleep`, one CLI each), waits until all
 * are ready and have settled, measures their shims and VMMs, then kills the CLIs (each shim
 * ends its VM when its owner dies) and waits until their directories are gone.
 */
export async function idleVmMemory(
  home: string,
  count: number,
  flags: string[],
): Promise<VmMemory[]> {
  const clis = Array.from({ length: count }, () => startIdleRun(home, flags));
  try {
    const statuses = await waitReady(home, count, clis);
    await sleep(SETTLE_MS);
    return await Promise.all(statuses.map(measureVm));
  } finally {
    for (const cli of clis) cli.kill("SIGKILL");
    await waitGone(home);
  }
}

function startIdleRun(home: string, flags: string[]): ChildProcess {
  const args = [CLI, "run", BENCH_ENVIRONMENT, ...flags, "--timeout-seconds", "600"];
  return spawn(process.execPath, [...args, "--", "sleep", "600"], {
    env: { ...process.env, PYRO_HOME: home },
    stdio: "ignore",
  });
}

async function vmStatuses(home: string): Promise<ShimStatusFile[]> {
  const dirs = await readdir(join(home, "vms")).catch(() => [] as string[]);
  const texts = await Promise.all(
    dirs.map((dir) => readFile(join(home, "vms", dir, "shim.json"), "utf8").catch(() => "")),
  );
  return texts.filter((text) => text !== "").map((text) => JSON.parse(text) as ShimStatusFile);
}

async function waitReady(
  home: string,
  count: number,
  clis: ChildProcess[],
): Promise<ShimStatusFile[]> {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const exited = clis.find((cli) => cli.exitCode !== null || cli.signalCode !== null);
    if (exited) throw new Error(`an idle \`pyro run\` exited early (${exited.exitCode})`);
    const ready = (await vmStatuses(home)).filter((s) => s.state === "ready" && s.vmm_pid);
    if (ready.length === count) return ready;
    await sleep(100);
  }
  throw new Error(`${count} idle VMs were not ready within ${READY_TIMEOUT_MS} ms`);
}

async function waitGone(home: string): Promise<void> {
  const deadline = performance.now() + GONE_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if ((await readdir(join(home, "vms")).catch(() => [])).length === 0) return;
    await sleep(100);
  }
  throw new Error(`idle VMs under ${home} did not end within ${GONE_TIMEOUT_MS} ms`);
}

async function measureVm(status: ShimStatusFile): Promise<VmMemory> {
  const [shim, vmm] = await Promise.all([rollup(status.shim_pid), rollup(status.vmm_pid!)]);
  return {
    bootMode: status.boot_mode ?? "cold",
    shimPss: shim.pss,
    vmmPss: vmm.pss,
    shimRss: shim.rss,
    vmmRss: vmm.rss,
  };
}

/** PSS and RSS of one process in MiB (root reads the jailed QEMU's too). */
async function rollup(pid: number): Promise<{ pss: number; rss: number }> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1]);
  const pss = field("Pss");
  const rss = field("Rss");
  if (!Number.isFinite(pss) || !Number.isFinite(rss)) {
    throw new Error(`/proc/${pid}/smaps_rollup has no Pss/Rss line`);
  }
  return { pss: pss / 1024, rss: rss / 1024 };
}

/** One line per measured group: the mean per VM of each figure, and the group's total. */
export function memoryReport(label: string, vms: VmMemory[]): string {
  const mean = (pick: (vm: VmMemory) => number) =>
    vms.reduce((sum, vm) => sum + pick(vm), 0) / vms.length;
  const shim = mean((vm) => vm.shimPss);
  const vmm = mean((vm) => vm.vmmPss);
  const modes = [...new Set(vms.map((vm) => vm.bootMode))].join("+");
  const total =
    vms.length > 1 ? `; all ${vms.length}: ${((shim + vmm) * vms.length).toFixed(0)} MiB` : "";
  return (
    `${label} (boot_mode ${modes}): PSS per VM ${(shim + vmm).toFixed(0)} MiB ` +
    `(shim ${shim.toFixed(0)} + vmm ${vmm.toFixed(0)}; RSS shim ${mean((vm) => vm.shimRss).toFixed(0)}, ` +
    `vmm ${mean((vm) => vm.vmmRss).toFixed(0)})${total}`
  );
}
