/**
 * JSON with sorted keys and 2-space indent: the `--json` format of every command. Apart
 * from `fs.ts` so the CLI can print without loading `node:crypto` and `fs/promises`,
 * which cost `pyro --version` tens of milliseconds (issue 10).
 */
export function stableJson(value: unknown): string {
  return JSON.stringify(sortKeys(value), null, 2);
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(entries.map(([k, v]) => [k, sortKeys(v)]));
  }
  return value;
}
