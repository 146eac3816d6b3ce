/** Refusal counts one VM reports in its status (frames and proxy requests together). */
export interface RefusalCounters {
  refused_total: number;
  refused_by_reason: Record<string, number>;
}

/** At most this many distinct (reason, destination) keys are remembered for rate limiting. */
const MAX_TRACKED_KEYS = 1_024;

/**
 * Counts every refusal of one VM and writes a log line for it, at most one line per
 * reason and destination per interval: a guest hammering a refused address must not grow
 * the log without bound, yet each kind of refusal still shows up. Suppressed repeats are
 * reported in the next line for that key.
 */
export class RefusalLog {
  private total = 0;
  private readonly byReason = new Map<string, number>();
  /** Per key: when its last line was written and how many refusals were not logged since. */
  private readonly recent = new Map<string, { loggedAt: number; suppressed: number }>();

  constructor(
    private readonly write: (line: string) => void,
    private readonly options: { intervalMs?: number; now?: () => number } = {},
  ) {}

  /** Records one refusal; `source` says which part refused it (`guard` or `proxy`). */
  refuse(source: "guard" | "proxy", reason: string, destination: string): void {
    this.total += 1;
    this.byReason.set(reason, (this.byReason.get(reason) ?? 0) + 1);
    const now = this.options.now?.() ?? Date.now();
    const key = `${source} ${reason} ${printable(destination)}`;
    const last = this.recent.get(key);
    if (last && now - last.loggedAt < (this.options.intervalMs ?? 1_000)) {
      last.suppressed += 1;
      return;
    }
    const repeats = last?.suppressed ? ` (+${last.suppressed} not logged)` : "";
    this.write(`${new Date(now).toISOString()} refused ${key}${repeats}\n`);
    this.remember(key, now);
  }

  private remember(key: string, now: number): void {
    this.recent.delete(key);
    this.recent.set(key, { loggedAt: now, suppressed: 0 });
    // Oldest first in a Map: drop the oldest so a scan of many addresses stays bounded.
    if (this.recent.size > MAX_TRACKED_KEYS) this.recent.delete(this.recent.keys().next().value!);
  }

  counters(): RefusalCounters {
    return { refused_total: this.total, refused_by_reason: Object.fromEntries(this.byReason) };
  }
}

/** Guest-chosen text (a host name from a request) made safe for one log line. */
function printable(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, "?");
  return clean.length > 200 ? `${clean.slice(0, 200)}...` : clean;
}
