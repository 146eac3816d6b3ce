import { applyPatch, type StructuredPatch, type StructuredPatchHunk } from "diff";
import { PyroError } from "../contract/errors.js";
import { parsePatchSections, type FileSection } from "./patch-parse.js";
import { WORKSPACE_ROOT } from "./paths.js";

/** The largest patch text workspace_patch_apply takes (1 MiB, like a file write). */
export const MAX_PATCH_BYTES = 1 << 20;

/** What a patch does to one file, once every hunk has been checked. */
export interface FileChange {
  /** Normalized path relative to /workspace. */
  path: string;
  status: "added" | "modified" | "deleted";
  /** The file's new text; `null` when it is deleted. */
  content: string | null;
}

/** The patch-apply result of the contract (`changed`, `summary`, `entries`). */
export interface ChangeReport {
  changed: boolean;
  summary: { total: number; added: number; modified: number; deleted: number };
  entries: { path: string; status: FileChange["status"] }[];
}

const NO_CHANGE_HINT = "Nothing was changed; read the file again and regenerate the patch.";

/**
 * Works out, without writing anything, what a unified diff does to /workspace.
 *
 * Takes plain (`diff -u`) and git (`git diff`) output: `a/` and `b/` prefixes are stripped,
 * `--- /dev/null` adds a file, `+++ /dev/null` deletes one, any number of files and hunks,
 * `\ No newline at end of file` either way. Hunks must match exactly (no fuzz); like
 * `patch` and `git apply` they may sit at another line if their context is found there.
 * Two sections for the same file apply in order, the second to the result of the first.
 * Renames, copies, mode changes and binary patches are refused.
 *
 * Every hunk of every file is checked before this returns, so the caller can write the
 * result knowing it all applies. Deletions come first in the result: apply it in order.
 *
 * @param readFile the current text of a workspace file, `undefined` when it does not exist.
 * @throws PyroError `invalid_argument` for a patch over {@link MAX_PATCH_BYTES} (checked
 *   first), a malformed patch, a path outside /workspace, or a hunk that does not apply
 *   (naming the file, the hunk, and the expected and found lines).
 */
export function planPatch(
  patchText: string,
  readFile: (path: string) => string | undefined,
): FileChange[] {
  checkPatchSize(patchText);
  const sections = parsePatchSections(patchText);
  const files = new PlannedFiles(readFile);
  for (const section of sections) {
    files.set(section.path, applySection(section, files.get(section.path)));
  }
  return files.changes();
}

/**
 * The files a patch touches (normalized, in order of first mention), so a caller can read
 * them before {@link planPatch}. Same checks as planPatch up to, not including, the hunks.
 *
 * @throws PyroError `invalid_argument` as planPatch does for size, syntax and paths.
 */
export function patchedPaths(patchText: string): string[] {
  checkPatchSize(patchText);
  return [...new Set(parsePatchSections(patchText).map((section) => section.path))];
}

/** The contract's patch-apply result for a set of changes. */
export function summarizeChanges(changes: FileChange[]): ChangeReport {
  const count = (status: FileChange["status"]) => changes.filter((c) => c.status === status).length;
  return {
    changed: changes.length > 0,
    summary: {
      total: changes.length,
      added: count("added"),
      modified: count("modified"),
      deleted: count("deleted"),
    },
    entries: changes.map(({ path, status }) => ({ path, status })),
  };
}

function checkPatchSize(patchText: string): void {
  const bytes = Buffer.byteLength(patchText, "utf8");
  if (bytes > MAX_PATCH_BYTES) {
    throw new PyroError(
      "invalid_argument",
      `patch is ${bytes} bytes; workspace_patch_apply takes at most ${MAX_PATCH_BYTES} bytes (1 MiB) — split it into several patches`,
      { details: { size_bytes: bytes, max_bytes: MAX_PATCH_BYTES } },
    );
  }
}

// ---- applying ----

/** The files a patch touches: their text before the patch and as planned so far. */
class PlannedFiles {
  private readonly before = new Map<string, string | undefined>();
  private readonly planned = new Map<string, string | undefined>();

  constructor(private readonly readFile: (path: string) => string | undefined) {}

  get(path: string): string | undefined {
    if (!this.before.has(path)) {
      const text = this.readFile(path);
      this.before.set(path, text);
      this.planned.set(path, text);
    }
    return this.planned.get(path);
  }

  set(path: string, text: string | undefined): void {
    this.planned.set(path, text);
  }

  /** Net changes in first-touched order, deletions first. */
  changes(): FileChange[] {
    const changes: FileChange[] = [];
    for (const [path, before] of this.before) {
      const after = this.planned.get(path);
      if (after === undefined) {
        if (before !== undefined) changes.push({ path, status: "deleted", content: null });
      } else {
        changes.push({ path, status: before === undefined ? "added" : "modified", content: after });
      }
    }
    return [
      ...changes.filter((c) => c.status === "deleted"),
      ...changes.filter((c) => c.status !== "deleted"),
    ];
  }
}

function applySection(section: FileSection, current: string | undefined): string | undefined {
  const file = JSON.stringify(section.path);
  if (section.kind === "add") {
    if (current !== undefined) {
      throw doesNotApply(
        `the patch adds ${file}, but it already exists in ${WORKSPACE_ROOT}; patch it as a modification (--- a/PATH, +++ b/PATH) instead`,
        section.path,
      );
    }
    return applyHunks(section, "");
  }
  if (current === undefined) {
    throw doesNotApply(
      `the patch ${section.kind === "delete" ? "deletes" : "modifies"} ${file}, which does not exist in ${WORKSPACE_ROOT}`,
      section.path,
    );
  }
  if (section.kind === "modify") return applyHunks(section, current);
  const rest = applyHunks(section, current);
  if (rest !== "") {
    throw doesNotApply(
      `the patch deletes ${file} but does not remove all of its lines`,
      section.path,
    );
  }
  return undefined;
}

/** Options that make jsdiff exact: no fuzz, and no silent CRLF/LF conversion. */
const EXACT = { fuzzFactor: 0, autoConvertLineEndings: false } as const;

function applyHunks(section: FileSection, text: string): string {
  if (section.hunks.length === 0) return text;
  refuseStartsPastEnd(section, text);
  const result = applyPatch(text, asPatch(section.hunks), EXACT);
  if (result === false) throw explainFailure(section, text);
  return result;
}

/**
 * jsdiff looks for a hunk by stepping one line at a time from where its header says it
 * starts, so `@@ -999999999999,1 ...` pinned the CPU for hours and a hunk claiming line
 * 10,000,000 of a one-line file was applied at line 1 (issue 7, defect 4). A header's start
 * counts lines of the file as it stands, so one past the end cannot be right: refuse it
 * before any searching. (An empty old side, `-N,0`, inserts after line N, which may be the
 * last.)
 */
function refuseStartsPastEnd(section: FileSection, text: string): void {
  const lineCount = countLines(text);
  section.hunks.forEach((hunk, index) => {
    const start = headerStart(hunk);
    if (start <= lineCount) return;
    throw doesNotApply(
      `the patch does not apply to ${JSON.stringify(section.path)}: hunk #${index + 1} (${hunkHeader(hunk)}) starts at line ${start}, but the file has only ${lineCount} lines. ${NO_CHANGE_HINT}`,
      section.path,
      { hunk: index + 1, hunk_header: hunkHeader(hunk) },
    );
  });
}

function countLines(text: string): number {
  const lines = text.split("\n");
  return lines.at(-1) === "" ? lines.length - 1 : lines.length;
}

function asPatch(hunks: StructuredPatchHunk[]): StructuredPatch {
  return { oldFileName: "", newFileName: "", oldHeader: "", newHeader: "", hunks };
}

/**
 * jsdiff only says "does not apply", so find the first hunk that fails and compare its old
 * lines with the file to say what was expected and what was found.
 */
function explainFailure(section: FileSection, text: string): PyroError {
  const { hunks } = section;
  const failing = firstFailingHunk(hunks, text);
  const hunk = hunks[failing] as StructuredPatchHunk;
  const isLast = failing === hunks.length - 1;
  const reason =
    (isLast ? endOfFileMismatch(text, hunk) : undefined) ??
    firstMismatch(text, hunk) ??
    "matches where its header says but overlaps the hunk before it (hunks must be in order and must not overlap)";
  return doesNotApply(
    `the patch does not apply to ${JSON.stringify(section.path)}: hunk #${failing + 1} (${hunkHeader(hunk)}) ${reason}. ${NO_CHANGE_HINT}`,
    section.path,
    { hunk: failing + 1, hunk_header: hunkHeader(hunk) },
  );
}

/**
 * The index of the first hunk that does not apply, found by applying prefixes of the hunk
 * list, which jsdiff places exactly as it places the whole list. A prefix that fails stays
 * failing when it grows, so a binary search needs log2(hunks) tries: trying every prefix in
 * turn was quadratic, minutes for a 1 MiB patch of small hunks whose last one fails.
 * Called only once the whole list failed.
 */
function firstFailingHunk(hunks: StructuredPatchHunk[], text: string): number {
  let applies = 0; // the longest prefix known to apply
  let fails = hunks.length; // the shortest prefix known to fail
  while (fails - applies > 1) {
    const middle = Math.floor((applies + fails) / 2);
    if (applyPatch(text, asPatch(hunks.slice(0, middle)), EXACT) === false) fails = middle;
    else applies = middle;
  }
  return fails - 1;
}

function firstMismatch(text: string, hunk: StructuredPatchHunk): string | undefined {
  const lines = text.split("\n");
  const lineCount = countLines(text);
  const expected = hunk.lines
    .filter((line) => line === "" || line.startsWith(" ") || line.startsWith("-"))
    .map((line) => line.slice(1));
  const start = hunk.oldStart - 1;
  for (const [offset, want] of expected.entries()) {
    const index = start + offset;
    if (index >= lineCount) {
      return `expects line ${index + 1} to be ${quoteLine(want)}, but the file has only ${lineCount} lines`;
    }
    if (lines[index] !== want) {
      return `expects line ${index + 1} to be ${quoteLine(want)}, but found ${quoteLine(lines[index] ?? "")}`;
    }
  }
  return undefined;
}

/** jsdiff checks `\ No newline at end of file` markers (only in the last hunk) first. */
function endOfFileMismatch(text: string, hunk: StructuredPatchHunk): string | undefined {
  const markedAfter = (op: string) =>
    hunk.lines.some((line, i) => line.startsWith("\\") && hunk.lines[i - 1]?.startsWith(op));
  const oldLacksNewline = markedAfter("-");
  const newLacksNewline = markedAfter("+");
  const endsWithNewline = text === "" || text.endsWith("\n");
  if (oldLacksNewline && endsWithNewline) {
    return 'says the file does not end with a newline ("\\ No newline at end of file"), but it does';
  }
  if (newLacksNewline && !oldLacksNewline && !endsWithNewline) {
    return "expects the file to end with a newline, but it does not";
  }
  return undefined;
}

function hunkHeader(hunk: StructuredPatchHunk): string {
  const newStart = hunk.newLines === 0 ? hunk.newStart - 1 : hunk.newStart;
  return `@@ -${headerStart(hunk)},${hunk.oldLines} +${newStart},${hunk.newLines} @@`;
}

/** The old start as the header writes it: jsdiff stores an empty side's start one higher. */
function headerStart(hunk: StructuredPatchHunk): number {
  return hunk.oldLines === 0 ? hunk.oldStart - 1 : hunk.oldStart;
}

function quoteLine(line: string): string {
  return JSON.stringify(line.length > 200 ? `${line.slice(0, 200)}…` : line);
}

function doesNotApply(
  message: string,
  path: string,
  details: Record<string, unknown> = {},
): PyroError {
  const text = message.endsWith(NO_CHANGE_HINT) ? message : `${message}. Nothing was changed.`;
  return new PyroError("invalid_argument", text, { details: { path, ...details } });
}
