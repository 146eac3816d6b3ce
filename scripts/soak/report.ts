import type { ClientKind } from "./plan.js";
import type { ClientOutcome } from "./clients.js";
import type { Leak } from "./leaks.js";

interface ShimUsage {
  fds: number;
  rss_kib: number;
}

export interface WorkspaceCheck {
  workspace_id: string;
  /** Why the workspace does not work after the soak, or null. */
  problem: string | null;
  /** Its shim before the clients and once they had all ended. */
  before: ShimUsage;
  after: ShimUsage;
}

export interface SoakReport {
  ok: boolean;
  seed: number;
  runs: number;
  concurrency: number;
  workspaces: number;
  kill_share: number;
  clients: {
    by_kind: Record<ClientKind, number>;
    killed_by_kind: Record<ClientKind, number>;
    killed: number;
    finished: number;
    failed: number;
  };
  /** VM and workspace ids that appeared under the soak's PYRO_HOME. */
  ids_seen: number;
  leaks_found: number;
  leaks: { after_clients: Leak[]; after_delete: Leak[] };
  /** Clients left alone that failed, workspaces that stopped working, shims that kept fds. */
  problems: string[];
  workspace_checks: WorkspaceCheck[];
  durations: {
    total_ms: number;
    clients_ms: number;
    settle_ms: number;
    final_settle_ms: number;
    client_ms: { min: number; median: number; max: number };
  };
}

interface Inputs {
  options: {
    seed: number;
    runs: number;
    concurrency: number;
    workspaces: number;
    kill_share: number;
  };
  outcomes: ClientOutcome[];
  checks: WorkspaceCheck[];
  /** Failures of the soak's own steps (a workspace that could not be deleted). */
  extra_problems: string[];
  leaks: SoakReport["leaks"];
  ids_seen: number;
  durations: Omit<SoakReport["durations"], "client_ms">;
}

export function summarise(inputs: Inputs): SoakReport {
  const { options, outcomes, checks, leaks } = inputs;
  const by_kind = { "cli-run": 0, "sdk-run": 0, "cli-exec": 0, "sdk-exec": 0 };
  const killed_by_kind = { ...by_kind };
  for (const o of outcomes) {
    by_kind[o.op.kind] += 1;
    if (o.killed) killed_by_kind[o.op.kind] += 1;
  }
  const problems = [
    ...outcomes.flatMap((o) => (o.problem ? [o.problem] : [])),
    ...checks.flatMap((c) => (c.problem ? [`workspace ${c.workspace_id}: ${c.problem}`] : [])),
    ...checks.flatMap(shimGrowth),
    ...inputs.extra_problems,
  ];
  const leaks_found = leaks.after_clients.length + leaks.after_delete.length;
  return {
    ok: leaks_found === 0 && problems.length === 0,
    seed: options.seed,
    runs: options.runs,
    concurrency: options.concurrency,
    workspaces: options.workspaces,
    kill_share: options.kill_share,
    clients: {
      by_kind,
      killed_by_kind,
      killed: outcomes.filter((o) => o.killed).length,
      finished: outcomes.filter((o) => !o.killed && !o.problem).length,
      failed: outcomes.filter((o) => o.problem).length,
    },
    ids_seen: inputs.ids_seen,
    leaks_found,
    leaks,
    problems,
    workspace_checks: checks,
    durations: { ...inputs.durations, client_ms: spread(outcomes.map((o) => o.duration_ms)) },
  };
}

/**
 * Once every client has ended, a shim holds what it held before them: a descriptor per
 * dead client would run a long-lived workspace out of files.
 */
function shimGrowth(check: WorkspaceCheck): string[] {
  const { before, after } = check;
  if (before.fds < 0 || after.fds < 0) return [`workspace ${check.workspace_id}: shim not found`];
  if (after.fds <= before.fds) return [];
  return [`workspace ${check.workspace_id}: shim fds grew from ${before.fds} to ${after.fds}`];
}

function spread(values: number[]): SoakReport["durations"]["client_ms"] {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return { min: 0, median: 0, max: 0 };
  return {
    min: sorted[0]!,
    median: sorted[Math.floor(sorted.length / 2)]!,
    max: sorted[sorted.length - 1]!,
  };
}

/** The figures, one fact a line, for a person reading a terminal or a CI log. */
export function formatReport(r: SoakReport): string {
  const kinds = Object.entries(r.clients.by_kind)
    .map(([k, n]) => `${k}=${n} (killed ${r.clients.killed_by_kind[k as ClientKind]})`)
    .join(" ");
  const d = r.durations;
  const lines = [
    `soak: seed=${r.seed} runs=${r.runs} concurrency=${r.concurrency} workspaces=${r.workspaces} kill_share=${r.kill_share}`,
    `clients: ${kinds}`,
    `outcomes: killed=${r.clients.killed} finished=${r.clients.finished} failed=${r.clients.failed} vm_ids_seen=${r.ids_seen}`,
    `durations: total_ms=${d.total_ms} clients_ms=${d.clients_ms} settle_ms=${d.settle_ms} final_settle_ms=${d.final_settle_ms}`,
    `client_ms: min=${d.client_ms.min} median=${d.client_ms.median} max=${d.client_ms.max}`,
    ...r.workspace_checks.map(
      (c) =>
        `workspace ${c.workspace_id}: ${c.problem ?? "works"}; shim fds ${c.before.fds} -> ${c.after.fds}, rss_kib ${c.before.rss_kib} -> ${c.after.rss_kib}`,
    ),
    `leftovers found: ${r.leaks_found} (after clients: ${r.leaks.after_clients.length}, after delete: ${r.leaks.after_delete.length})`,
    ...[...r.leaks.after_clients, ...r.leaks.after_delete].map(
      (l) => `  leak ${l.kind}: ${l.detail}`,
    ),
    ...r.problems.map((p) => `  problem: ${p}`),
    r.ok ? "soak: ok" : "soak: FAILED",
  ];
  return lines.join("\n") + "\n";
}
