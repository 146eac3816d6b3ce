/**
 * `npm run bench`: pyro against the floor, cold against warm, measured in one run so the
 * ratios hold on a noisy machine (issue 10). Floor = the same QEMU, kernel, initramfs and
 * base image booted to an answering agent by raw socket writes (`floor.ts`). Cold and warm
 * = `pyro run debian:12-base -- true` through the CLI, with `--cold` and from the memory
 * template. Then pause and resume of a workspace (`pause-resume.ts`), the host memory of
 * idle VMs (`vm-memory.ts`) and the start-up cost of pyro's own processes
 * (`startup-bench.ts`).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { bootArtifacts } from "../src/env/environments.js";
import { floorRun, type FloorRun } from "./floor.js";
import { median } from "./measure.js";
import {
  BENCH_ENVIRONMENT,
  cliHasColdFlag,
  pyroRun,
  type RunPayload,
  type RunSample,
} from "./pyro-cli.js";
import { cliHasPause, pauseResume } from "./pause-resume.js";
import { startupFigures, startupReport } from "./startup-bench.js";
import { idleVmMemory, memoryReport } from "./vm-memory.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const CLONES = Number(process.env.BENCH_CLONES ?? 10);
const TARGETS = { runOverFloor: 1.5, warmOverCold: 0.35, pauseMs: 100, resumeOverCold: 0.3 };

interface Samples {
  floor: FloorRun[];
  cold: RunSample[];
  /** Empty when this build has no templates (no `--cold` flag). */
  warm: RunSample[];
}

/** Rounds of floor, cold and warm, interleaved so a busy neighbour slows all three alike. */
async function measureRuns(work: string, warmToo: boolean): Promise<Samples> {
  const artifacts = await bootArtifacts(BENCH_ENVIRONMENT, () => {});
  const coldFlags = warmToo ? ["--cold"] : [];
  // Not counted: warms the page cache for every side and builds the template once.
  await floorRun(work, artifacts);
  await pyroRun(work, coldFlags);
  if (warmToo) await pyroRun(work);
  const samples: Samples = { floor: [], cold: [], warm: [] };
  for (let i = 0; i < RUNS; i++) {
    samples.floor.push(await floorRun(work, artifacts));
    samples.cold.push(await pyroRun(work, coldFlags));
    if (warmToo) samples.warm.push(await pyroRun(work));
  }
  return samples;
}

/** The median of each timing the results carry (the set grows with the contract). */
function timingsLine(payloads: RunPayload[]): string {
  const keys = Object.keys(payloads[0]?.timings ?? {});
  return keys
    .map((key) => `${key}=${median(payloads.map((p) => p.timings[key] ?? NaN)).toFixed(0)}`)
    .join(" ");
}

/**
 * What a run spends outside the VM's own phases: the CLI's start and module loads, the
 * manager's preparation (VM directory, state disk, template copy) and the shim's spawn,
 * i.e. the whole run minus the start request's time to an answering agent, the command
 * and the teardown.
 */
function outsideVm(runs: RunSample[]): number {
  return median(
    runs.map(
      (r) =>
        r.totalMs -
        (r.payload.timings.agent_ready_ms ?? 0) -
        (r.payload.timings.exec_ms ?? 0) -
        (r.payload.timings.teardown_ms ?? 0),
    ),
  );
}

function bootModes(runs: RunSample[]): string {
  const modes = new Set(runs.map((r) => r.payload.boot_mode ?? "cold"));
  const reasons = new Set(runs.map((r) => r.payload.cold_reason).filter(Boolean));
  return [...modes].join("+") + (reasons.size ? ` (cold_reason: ${[...reasons].join("; ")})` : "");
}

const ratio = (value: number, target: number) =>
  `${value.toFixed(2)} (target <= ${target.toFixed(2)}, ${value <= target ? "met" : "missed"})`;

function runReport({ floor, cold, warm }: Samples): string[] {
  const floorMs = median(floor.map((f) => f.totalMs));
  const coldMs = median(cold.map((r) => r.totalMs));
  const lines = [
    `acceleration: ${String(cold[0]!.payload.acceleration)}, runs: ${RUNS} each, load average ${loadavg()[0]!.toFixed(1)}`,
    `floor (raw boot to agent, power off): median ${floorMs.toFixed(0)} ms (agent ready ${median(floor.map((f) => f.readyMs)).toFixed(0)} ms)`,
    `cold pyro run ${BENCH_ENVIRONMENT} -- true: median ${coldMs.toFixed(0)} ms, boot_mode ${bootModes(cold)}`,
    `  timings (median ms): ${timingsLine(cold.map((r) => r.payload))}; outside the VM ${outsideVm(cold).toFixed(0)}`,
    `ratio cold run/floor: ${ratio(coldMs / floorMs, TARGETS.runOverFloor)}`,
  ];
  if (warm.length === 0) {
    lines.push(
      "warm pyro run: n/a (this build has no memory templates: `pyro run --cold` unknown)",
    );
    return lines;
  }
  const warmMs = median(warm.map((r) => r.totalMs));
  lines.push(
    `warm pyro run ${BENCH_ENVIRONMENT} -- true: median ${warmMs.toFixed(0)} ms, boot_mode ${bootModes(warm)}`,
    `  timings (median ms): ${timingsLine(warm.map((r) => r.payload))}; outside the VM ${outsideVm(warm).toFixed(0)}`,
    `ratio warm/cold: ${ratio(warmMs / coldMs, TARGETS.warmOverCold)}`,
    `ratio warm run/floor: ${(warmMs / floorMs).toFixed(2)}`,
  );
  return lines;
}

async function memoryLines(work: string, warmToo: boolean): Promise<string[]> {
  const lines = [
    memoryReport("idle cold VM", await idleVmMemory(work, 1, warmToo ? ["--cold"] : [])),
  ];
  if (!warmToo) return [...lines, "idle warm clones: n/a (no memory templates in this build)"];
  lines.push(memoryReport("idle warm clone", await idleVmMemory(work, 1, [])));
  lines.push(
    memoryReport(`${CLONES} idle warm clones at once`, await idleVmMemory(work, CLONES, [])),
  );
  return lines;
}

/**
 * Pause and resume of one workspace. The ratio's cold start is a cold run's start request
 * to its answering agent (`agent_ready_ms`), the same span `resume_ms` covers.
 */
async function pauseLines(work: string, coldAgentReadyMs: number): Promise<string[]> {
  if (!cliHasPause()) return ["pause/resume: n/a (this build has no `pyro workspace pause`)"];
  const figures = await pauseResume(work, RUNS);
  return [
    `pause: median pause_ms ${figures.pauseMs.toFixed(0)} (target <= ${TARGETS.pauseMs}, ${figures.pauseMs <= TARGETS.pauseMs ? "met" : "missed"})`,
    `resume: median resume_ms ${figures.resumeMs.toFixed(0)}, resumed_from ${figures.resumedFrom.join("+")}; ` +
      `resume + exec as CLI processes ${figures.resumeToExecWallMs.toFixed(0)} ms`,
    `ratio resume/cold start (agent_ready_ms ${coldAgentReadyMs.toFixed(0)}): ${ratio(figures.resumeMs / coldAgentReadyMs, TARGETS.resumeOverCold)}`,
  ];
}

async function main() {
  const work = await mkdtemp(join(tmpdir(), "pyro-bench-"));
  try {
    const warmToo = cliHasColdFlag();
    const samples = await measureRuns(work, warmToo);
    for (const line of runReport(samples)) console.log(line);
    const coldReady = median(samples.cold.map((r) => r.payload.timings.agent_ready_ms ?? NaN));
    for (const line of await pauseLines(work, coldReady)) console.log(line);
    for (const line of await memoryLines(work, warmToo)) console.log(`memory: ${line}`);
    for (const line of startupReport(await startupFigures())) console.log(`start-up: ${line}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
