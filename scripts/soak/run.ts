import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliJson, runClients, SOAK_MEM_MIB, type ClientOutcome } from "./clients.js";
import { findLeaks, launchVmId, type Leak, type LeakScope } from "./leaks.js";
import { planSoak, type PlanOptions, type SoakOp } from "./plan.js";
import { summarise, type SoakReport, type WorkspaceCheck } from "./report.js";

export interface SoakOptions extends PlanOptions {
  /** Clients running at once. */
  concurrency: number;
  /** How long VMs may take to go away after their clients ended. */
  settle_ms: number;
  log: (line: string) => void;
}

/** The soak's own PYRO_HOME and TMPDIR, so every leftover it finds is its own. */
interface Sandbox {
  root: string;
  home: string;
  tmp: string;
  env: NodeJS.ProcessEnv;
  /** Every VM and workspace id that appeared under home (cgroup leaves are named by them). */
  ids: Set<string>;
}

function makeSandbox(): Sandbox {
  const root = mkdtempSync(join(tmpdir(), "soak-"));
  const home = join(root, "home");
  const tmp = join(root, "tmp");
  for (const dir of [home, tmp]) mkdirSync(dir);
  return { root, home, tmp, env: { ...process.env, PYRO_HOME: home, TMPDIR: tmp }, ids: new Set() };
}

/** Notes the ids of VMs that exist right now; run often enough to see every VM's short life. */
function noteIds(box: Sandbox): void {
  for (const folder of ["vms", "workspaces"]) {
    let entries: string[] = [];
    try {
      entries = readdirSync(join(box.home, folder));
    } catch {
      continue;
    }
    for (const id of entries) {
      box.ids.add(id);
      const vmId = launchVmId(box.home, id, folder);
      if (vmId) box.ids.add(vmId);
    }
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Leaks once teardown has had `settle_ms`; returns early as soon as none is left. */
async function settle(scope: LeakScope, settleMs: number): Promise<{ leaks: Leak[]; ms: number }> {
  const started = performance.now();
  let leaks = findLeaks(scope);
  while (leaks.length > 0 && performance.now() - started < settleMs) {
    await sleep(250);
    leaks = findLeaks(scope);
  }
  return { leaks, ms: Math.round(performance.now() - started) };
}

/** A workspace shim's open descriptors and memory, to catch what killed clients leave in it. */
function shimUsage(box: Sandbox, workspaceId: string): { fds: number; rss_kib: number } {
  try {
    const status = JSON.parse(
      readFileSync(join(box.home, "workspaces", workspaceId, "shim.json"), "utf8"),
    ) as { shim_pid: number };
    const fds = readdirSync(`/proc/${status.shim_pid}/fd`).length;
    const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${status.shim_pid}/status`, "utf8"));
    return { fds, rss_kib: Number(rss?.[1] ?? 0) };
  } catch {
    return { fds: -1, rss_kib: -1 };
  }
}

type ExecResult = { exit_code: number; stdout: string };

const execIn = (box: Sandbox, id: string, script: string) =>
  cliJson<ExecResult>(["workspace", "exec", id, "--json", "--", "sh", "-c", script], box.env);

/**
 * A workspace survived if it still runs commands and holds the file of every exec that
 * finished unharmed.
 */
async function checkWorkspace(
  box: Sandbox,
  id: string,
  finished: SoakOp[],
): Promise<string | null> {
  const expected = finished.map((op) => `soak-${op.index}.txt`);
  try {
    const r = await execIn(box, id, "ls; echo alive");
    const lines = r.stdout.split("\n");
    const missing = expected.filter((name) => !lines.includes(name));
    if (r.exit_code !== 0 || !lines.includes("alive")) return `exec answered ${r.exit_code}`;
    return missing.length ? `files of finished execs missing: ${missing.join(" ")}` : null;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Ends what leaked (only processes and cgroups tied to the soak's own dirs) and its dirs. */
function cleanUp(box: Sandbox, leaks: Leak[]): void {
  for (const leak of leaks) {
    const pid = leak.kind === "process" ? /^pid (\d+)/.exec(leak.detail)?.[1] : undefined;
    if (pid) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
  for (const leak of leaks) {
    if (leak.kind === "cgroup") rmSync(leak.detail, { recursive: false, force: true });
  }
  rmSync(box.root, { recursive: true, force: true });
}

/** Creates workspaces, runs and kills the planned clients, then looks for what they left. */
export async function soak(options: SoakOptions): Promise<SoakReport> {
  const started = performance.now();
  const box = makeSandbox();
  const watcher = setInterval(() => noteIds(box), 50);
  const scope = (live: string[]): LeakScope => ({
    home: box.home,
    tmp: box.tmp,
    liveWorkspaces: live,
    ids: box.ids,
  });
  let leaks: Leak[] = [];
  try {
    const workspaceIds = await createWorkspaces(box, options);
    const usageBefore = workspaceIds.map((id) => shimUsage(box, id));
    const ops = planSoak(options);
    const clientsStarted = performance.now();
    const outcomes = await runClients(ops, workspaceIds, box.env, options.concurrency, (o) =>
      options.log(outcomeLine(o)),
    );
    const clientsMs = Math.round(performance.now() - clientsStarted);
    const afterClients = await settle(scope(workspaceIds), options.settle_ms);
    const usageAfter = workspaceIds.map((id) => shimUsage(box, id));
    const checks: WorkspaceCheck[] = [];
    for (const [i, id] of workspaceIds.entries()) {
      const finished = outcomes.filter((o) => o.op.workspace === i && !o.killed && !o.problem);
      const problem = await checkWorkspace(
        box,
        id,
        finished.map((o) => o.op),
      );
      checks.push({ workspace_id: id, problem, before: usageBefore[i]!, after: usageAfter[i]! });
    }
    const deleteProblems = await deleteWorkspaces(box, workspaceIds);
    noteIds(box);
    const final = await settle(scope([]), options.settle_ms);
    leaks = [...afterClients.leaks, ...final.leaks];
    return summarise({
      options,
      outcomes,
      checks,
      extra_problems: deleteProblems,
      leaks: { after_clients: afterClients.leaks, after_delete: final.leaks },
      ids_seen: box.ids.size,
      durations: {
        total_ms: Math.round(performance.now() - started),
        clients_ms: clientsMs,
        settle_ms: afterClients.ms,
        final_settle_ms: final.ms,
      },
    });
  } finally {
    clearInterval(watcher);
    // A failed soak must not leave its own VMs running: end whatever is tied to its dirs.
    cleanUp(box, [...leaks, ...findLeaks(scope([]))]);
  }
}

/** Deletes the soak's workspaces; a delete that fails is a problem to report, not a crash. */
async function deleteWorkspaces(box: Sandbox, ids: string[]): Promise<string[]> {
  const problems: string[] = [];
  for (const id of ids) {
    await cliJson(["workspace", "delete", id, "--json"], box.env).catch((error: Error) =>
      problems.push(`workspace ${id}: delete failed: ${error.message}`),
    );
  }
  return problems;
}

async function createWorkspaces(box: Sandbox, options: SoakOptions): Promise<string[]> {
  const created = await Promise.all(
    Array.from({ length: options.workspaces }, () =>
      cliJson<{ workspace_id: string }>(
        ["workspace", "create", "debian:12-base", "--json", "--mem-mib", String(SOAK_MEM_MIB)],
        box.env,
      ),
    ),
  );
  const ids = created.map((w) => w.workspace_id);
  // One exec each first, so the shims' descriptor baseline includes a served client.
  for (const id of ids) await execIn(box, id, "true");
  options.log(`[soak] phase=workspaces created=${ids.join(",") || "none"}`);
  return ids;
}

function outcomeLine(o: ClientOutcome): string {
  const outcome = o.killed ? "killed" : o.problem ? "failed" : "ok";
  return `[soak] phase=client index=${o.op.index} kind=${o.op.kind} outcome=${outcome} duration_ms=${o.duration_ms}`;
}
