import { escapeLine } from "./escape.js";

/** One column of a human-mode table: a header and how to show a row's cell. */
export interface Column<T> {
  header: string;
  cell: (row: T) => string;
  /** Numbers read best right-aligned. @default "left" */
  align?: "left" | "right";
}

const GAP = "  ";

/**
 * Rows as an aligned table under upper-case headers, the way `docker ps` and `kubectl get`
 * print lists: columns two spaces apart, the last one unpadded so no line ends in blanks.
 * Cells are escaped to one line each (names and labels come from users and guests), and
 * an empty cell shows as "-" so columns never collapse.
 */
export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((row) => columns.map((c) => escapeLine(c.cell(row)) || "-"));
  const headers = columns.map((c) => c.header.toUpperCase());
  const widths = columns.map((_, i) =>
    Math.max(width(headers[i]!), ...cells.map((line) => width(line[i]!))),
  );
  const line = (values: string[]) =>
    values
      .map((value, i) => {
        const last = i === values.length - 1;
        const pad = " ".repeat(widths[i]! - width(value));
        if (columns[i]!.align === "right") return pad + value;
        return last ? value : value + pad;
      })
      .join(GAP);
  return [headers, ...cells].map(line).join("\n");
}

/**
 * Terminal columns a cell takes. Code points, not UTF-16 units, so an emoji or a CJK
 * name does not shift the columns after it by a surrogate; wide glyphs still count as one.
 */
function width(text: string): number {
  return [...text].length;
}

/** Bytes for a person: "512 B", "3.4 KiB", "12 MiB", "1.5 GiB". */
export function formatBytes(bytes: number | null): string {
  if (bytes === null) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = unit === 0 || value >= 10 ? value.toFixed(0) : value.toFixed(1);
  return `${shown} ${units[unit]}`;
}

/** How long ago an ISO time was, coarsely: "just now", "40s ago", "12m ago", "3h ago", "2d ago". */
export function formatAge(iso: string, now: Date = new Date()): string {
  const seconds = Math.round((now.getTime() - Date.parse(iso)) / 1000);
  if (Number.isNaN(seconds)) return "-";
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}
