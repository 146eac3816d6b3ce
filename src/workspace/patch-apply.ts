/**
 * Placing a file section's hunks, exactly as GNU `patch --fuzz=0` does: each hunk's old
 * lines must match whole, searched outward from where its header (shifted by the offset of
 * the hunk before) says it starts; a hunk cut short by the start or end of the file may
 * only apply there; `\ No newline at end of file` must be true of the file. Written here
 * rather than left to jsdiff's applyPatch, which searched from any start (hours for
 * `@@ -999999999999,1`, issue 7 defect 4), moved start- and end-anchored hunks, ignored a
 * marker after a context line, and could not say which hunk failed without re-applying.
 */
import type { StructuredPatchHunk } from "diff";
import { PyroError } from "../contract/errors.js";
import type { FileSection } from "./patch-parse.js";

export const NO_CHANGE_HINT = "Nothing was changed; read the file again and regenerate the patch.";

/**
 * Line comparisons (plus lines of each file patched) one patch may cost: far above any
 * real patch (a 1 MiB patch has ~50,000 lines, a patched file at most 16 MiB), and well
 * under a second, so a patch built to make the search slow is refused instead.
 */
export const MAX_PATCH_WORK = 50_000_000;

/** Work left for one patch; shared by all its sections. */
export interface PatchBudget {
  left: number;
}

/** A file as lines, and whether its last line ends with a newline. */
interface FileLines {
  lines: string[];
  finalNewline: boolean;
}

/** What a hunk says, read once. */
interface Hunk {
  number: number;
  header: string;
  /** 0-based index of the first old line, per the header (for `-N,0`: N). */
  start: number;
  old: string[];
  new: string[];
  oldLacksNewline: boolean;
  newLacksNewline: boolean;
  anchor: "start" | "end" | undefined;
}

/**
 * The text after applying a section's hunks in order.
 *
 * @throws PyroError `invalid_argument` naming the first hunk that does not apply (and what
 *   was expected and found), or when the patch would cost more than {@link MAX_PATCH_WORK}.
 */
export function applyHunks(section: FileSection, text: string, budget: PatchBudget): string {
  if (section.hunks.length === 0) return text;
  const file = toLines(text);
  spend(budget, file.lines.length, section.path);
  const hunks = section.hunks.map(readHunk);
  // Refused before any search: a start past the end is never right (defect 4).
  for (const hunk of hunks) refuseStartPastEnd(section.path, hunk, file);
  const out: string[] = [];
  let copied = 0; // old lines consumed so far: no hunk may start before this
  let offset = 0; // where the last hunk applied minus where its header said
  let finalNewline = file.finalNewline;
  for (const hunk of hunks) {
    const at = place(hunk, file, copied, offset, { budget, path: section.path });
    if (at === undefined) throw explain(section.path, hunk, file, copied, offset);
    out.push(...file.lines.slice(copied, at), ...hunk.new);
    copied = at + hunk.old.length;
    offset = at - hunk.start;
    if (copied === file.lines.length) finalNewline = !hunk.newLacksNewline;
  }
  out.push(...file.lines.slice(copied));
  return fromLines({ lines: out, finalNewline });
}

function toLines(text: string): FileLines {
  const lines = text.split("\n");
  if (lines.at(-1) === "") {
    lines.pop();
    return { lines, finalNewline: true };
  }
  return { lines, finalNewline: false };
}

function fromLines({ lines, finalNewline }: FileLines): string {
  return lines.length === 0 ? "" : `${lines.join("\n")}${finalNewline ? "\n" : ""}`;
}

function readHunk(hunk: StructuredPatchHunk, index: number): Hunk {
  const body = hunk.lines.filter((line) => !line.startsWith("\\"));
  const isContext = (line: string) => line === "" || line.startsWith(" ");
  const marked = hunk.lines.flatMap((line, i) =>
    line.startsWith("\\") ? [hunk.lines[i - 1] ?? ""] : [],
  );
  const firstChange = body.findIndex((line) => !isContext(line));
  const after = firstChange === -1 ? 0 : [...body].reverse().findIndex((l) => !isContext(l));
  const oldStart = hunk.oldLines === 0 ? hunk.oldStart - 1 : hunk.oldStart;
  const newStart = hunk.newLines === 0 ? hunk.newStart - 1 : hunk.newStart;
  return {
    number: index + 1,
    header: `@@ -${oldStart},${hunk.oldLines} +${newStart},${hunk.newLines} @@`,
    // jsdiff stores an empty side's start one higher than the header writes it, which is
    // exactly the 0-based index to insert at.
    start: hunk.oldStart - 1,
    old: body.filter((line) => !line.startsWith("+")).map((line) => line.slice(1)),
    new: body.filter((line) => !line.startsWith("-")).map((line) => line.slice(1)),
    // After a context line the marker is about both sides.
    oldLacksNewline: marked.some((line) => !line.startsWith("+")),
    newLacksNewline: marked.some((line) => !line.startsWith("-")),
    // GNU patch's rule at fuzz 0: less context before the change than after, with a
    // header at line 1, was cut short by the start; less after than before, by the end.
    anchor:
      firstChange === -1
        ? undefined
        : firstChange < after && oldStart <= 1
          ? "start"
          : after < firstChange
            ? "end"
            : undefined,
  };
}

function refuseStartPastEnd(path: string, hunk: Hunk, file: FileLines): void {
  const headerStart = hunk.old.length === 0 ? hunk.start : hunk.start + 1;
  if (headerStart <= file.lines.length) return;
  throw doesNotApply(
    path,
    hunk,
    `starts at line ${headerStart}, but the file has only ${file.lines.length} lines`,
  );
}

/** Where the hunk applies (0-based), trying its expected line, then +1, -1, +2, -2, .... */
function place(
  hunk: Hunk,
  file: FileLines,
  copied: number,
  offset: number,
  cost: { budget: PatchBudget; path: string },
): number | undefined {
  const last = file.lines.length - hunk.old.length;
  // Old lines without a final newline can only be the file's last ones. (GNU patch ignores
  // a new side's marker when the hunk does not reach the end, and so does this.)
  const ends = hunk.anchor === "end" || hunk.oldLacksNewline;
  const candidates = hunk.anchor === "start" ? [0] : ends ? [last] : undefined;
  const tryAt = (at: number) => at >= copied && at <= last && fits(hunk, file, at, cost);
  if (candidates) return candidates.find(tryAt);
  const expected = hunk.start + offset;
  for (let distance = 0; ; distance++) {
    if (tryAt(expected + distance)) return expected + distance;
    if (distance > 0 && tryAt(expected - distance)) return expected - distance;
    if (expected + distance > last && expected - distance < copied) return undefined;
  }
}

function fits(
  hunk: Hunk,
  file: FileLines,
  at: number,
  cost: { budget: PatchBudget; path: string },
): boolean {
  const reachesEnd = at + hunk.old.length === file.lines.length;
  if (hunk.oldLacksNewline && !(reachesEnd && !file.finalNewline)) return false;
  // Old lines that run to an unterminated last line must say so, as diff writes them.
  if (!hunk.oldLacksNewline && reachesEnd && !file.finalNewline && file.lines.length > 0) {
    return false;
  }
  for (const [i, line] of hunk.old.entries()) {
    spend(cost.budget, 1, cost.path);
    if (file.lines[at + i] !== line) return false;
  }
  return true;
}

function spend(budget: PatchBudget, work: number, path: string): void {
  budget.left -= work;
  if (budget.left >= 0) return;
  throw new PyroError(
    "invalid_argument",
    `the patch needs too much searching to place its hunks in ${JSON.stringify(path)} (over ${MAX_PATCH_WORK} line comparisons); give hunk headers with the right line numbers, or split the patch. Nothing was changed.`,
    { details: { path } },
  );
}

/** Why a hunk did not apply: the first line that differs where it had to or was meant to. */
function explain(
  path: string,
  hunk: Hunk,
  file: FileLines,
  copied: number,
  offset: number,
): PyroError {
  const newline = newlineMismatch(hunk, file);
  if (newline !== undefined) return doesNotApply(path, hunk, newline);
  // Where the header points says most to whoever wrote the patch; an anchored hunk that
  // matches there still had to match at the start or end.
  const expected = hunk.start + offset;
  const anchored = hunk.anchor === "start" ? 0 : file.lines.length - hunk.old.length;
  const note =
    hunk.anchor === undefined
      ? ""
      : ` (it has less context ${hunk.anchor === "start" ? "before its change than after" : "after its change than before"}, so it may only apply at the ${hunk.anchor} of the file)`;
  const reason =
    firstMismatch(hunk, file, Math.max(0, expected)) ??
    (hunk.anchor === undefined ? undefined : firstMismatch(hunk, file, Math.max(0, anchored))) ??
    (expected < copied
      ? "matches where its header says but overlaps the hunk before it (hunks must be in order and must not overlap)"
      : "does not match there");
  return doesNotApply(path, hunk, `${reason}${note}`);
}

function newlineMismatch(hunk: Hunk, file: FileLines): string | undefined {
  const endsWithNewline = file.finalNewline || file.lines.length === 0;
  if (hunk.oldLacksNewline && endsWithNewline) {
    return 'says the file does not end with a newline ("\\ No newline at end of file"), but it does';
  }
  if (!hunk.oldLacksNewline && !endsWithNewline && hunk.newLacksNewline) {
    return "expects the file to end with a newline, but it does not";
  }
  return undefined;
}

function firstMismatch(hunk: Hunk, file: FileLines, at: number): string | undefined {
  const count = file.lines.length;
  for (const [i, want] of hunk.old.entries()) {
    if (at + i >= count) {
      return `expects line ${at + i + 1} to be ${quoteLine(want)}, but the file has only ${count} lines`;
    }
    const found = file.lines[at + i] as string;
    if (found !== want) {
      return `expects line ${at + i + 1} to be ${quoteLine(want)}, but found ${quoteLine(found)}`;
    }
  }
  if (at + hunk.old.length === count && !file.finalNewline && count > 0) {
    return `expects line ${count} to end with a newline, but it is the file's last line and has none`;
  }
  return undefined;
}

function quoteLine(line: string): string {
  return JSON.stringify(line.length > 200 ? `${line.slice(0, 200)}…` : line);
}

function doesNotApply(path: string, hunk: Hunk, reason: string): PyroError {
  return new PyroError(
    "invalid_argument",
    `the patch does not apply to ${JSON.stringify(path)}: hunk #${hunk.number} (${hunk.header}) ${reason}. ${NO_CHANGE_HINT}`,
    { details: { path, hunk: hunk.number, hunk_header: hunk.header } },
  );
}
