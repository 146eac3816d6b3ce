import { random } from "../../test/helpers/random.js";

/** How a soak client reaches pyro: the built CLI or the SDK, each in a process of its own. */
export type ClientKind = "cli-run" | "sdk-run" | "cli-exec" | "sdk-exec";

export interface SoakOp {
  index: number;
  kind: ClientKind;
  /** The workspace an exec targets (null for runs). */
  workspace: number | null;
  /** How long the guest command sleeps before answering, so kills land mid-command too. */
  sleep_ms: number;
  /**
   * SIGKILL the client this long after spawning it, or never (null). Spread over
   * client start-up, boot and the command itself; a client that already ended is not killed.
   */
  kill_after_ms: number | null;
}

export interface PlanOptions {
  runs: number;
  seed: number;
  workspaces: number;
  /** Share of clients picked for a SIGKILL, 0..1. */
  kill_share: number;
  /** Latest kill moment after spawn. */
  max_kill_ms: number;
}

const RUN_KINDS: ClientKind[] = ["cli-run", "sdk-run"];
const ALL_KINDS: ClientKind[] = ["cli-run", "sdk-run", "cli-exec", "sdk-exec"];

/** The whole soak, decided up front from the seed so a failing run can be replayed. */
export function planSoak(options: PlanOptions): SoakOp[] {
  const next = random(options.seed);
  const pick = <T>(items: T[]): T => items[Math.floor(next() * items.length)]!;
  const kinds = options.workspaces > 0 ? ALL_KINDS : RUN_KINDS;
  return Array.from({ length: options.runs }, (_, index) => {
    const kind = pick(kinds);
    const exec = kind.endsWith("exec");
    return {
      index,
      kind,
      workspace: exec ? Math.floor(next() * options.workspaces) : null,
      sleep_ms: Math.floor(next() * 1_500),
      kill_after_ms: next() < options.kill_share ? Math.floor(next() * options.max_kill_ms) : null,
    };
  });
}

/** The guest command of an op; it prints a marker the soak checks, execs also leave a file. */
export function opCommand(op: SoakOp): string[] {
  const pause = `sleep ${(op.sleep_ms / 1000).toFixed(3)}`;
  const marker = `soak-${op.index}`;
  if (op.workspace === null) return ["sh", "-c", `${pause}; echo ${marker}`];
  return ["sh", "-c", `${pause}; echo ${op.index} > ${marker}.txt; echo ${marker}`];
}

export function opMarker(op: SoakOp): string {
  return `soak-${op.index}\n`;
}
