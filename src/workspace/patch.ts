import { PyroError } from "../contract/errors.js";
import { applyHunks, MAX_PATCH_WORK, NO_CHANGE_HINT, type PatchBudget } from "./patch-apply.js";
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

/**
 * Works out, without writing anything, what a unified diff does to /workspace.
 *
 * Takes plain (`diff -u`) and git (`git diff`) output: `a/` and `b/` prefixes are stripped,
 * `--- /dev/null` adds a file, `+++ /dev/null` deletes one, any number of files and hunks,
 * `\ No newline at end of file` either way. Hunks must match exactly (no fuzz); like
 * `patch --fuzz=0` they may sit at another line if their context is found there, except
 * a hunk cut short by the file's start or end, which applies only there (patch-apply.ts).
 * Two sections for the same file apply in order, the second to the result of the first.
 * Renames, copies, mode changes and binary patches are refused.
 *
 * Every hunk of every file is checked before this returns, so the caller can write the
 * result knowing it all applies. Deletions come first in the result: apply it in order.
 *
 * @param readFile the current text of a workspace file, `undefined` when it does not exist.
 * @throws PyroError `invalid_argument` for a patch over {@link MAX_PATCH_BYTES} (checked
 *   first), a malformed patch, a path outside /workspace, a hunk that does not apply
 *   (naming the file, the hunk, and the expected and found lines), or one whose placing
 *   would cost more than MAX_PATCH_WORK line comparisons.
 */
export function planPatch(
  patchText: string,
  readFile: (path: string) => string | undefined,
): FileChange[] {
  checkPatchSize(patchText);
  const sections = parsePatchSections(patchText);
  const files = new PlannedFiles(readFile);
  const budget: PatchBudget = { left: MAX_PATCH_WORK };
  for (const section of sections) {
    files.set(section.path, applySection(section, files.get(section.path), budget));
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

function applySection(
  section: FileSection,
  current: string | undefined,
  budget: PatchBudget,
): string | undefined {
  const file = JSON.stringify(section.path);
  if (section.kind === "add") {
    if (current !== undefined) {
      throw doesNotApply(
        `the patch adds ${file}, but it already exists in ${WORKSPACE_ROOT}; patch it as a modification (--- a/PATH, +++ b/PATH) instead`,
        section.path,
      );
    }
    return applyHunks(section, "", budget);
  }
  if (current === undefined) {
    throw doesNotApply(
      `the patch ${section.kind === "delete" ? "deletes" : "modifies"} ${file}, which does not exist in ${WORKSPACE_ROOT}`,
      section.path,
    );
  }
  if (section.kind === "modify") return applyHunks(section, current, budget);
  const rest = applyHunks(section, current, budget);
  if (rest !== "") {
    throw doesNotApply(
      `the patch deletes ${file} but does not remove all of its lines`,
      section.path,
    );
  }
  return undefined;
}

function doesNotApply(
  message: string,
  path: string,
  details: Record<string, unknown> = {},
): PyroError {
  const text = message.endsWith(NO_CHANGE_HINT) ? message : `${message}. Nothing was changed.`;
  return new PyroError("invalid_argument", text, { details: { path, ...details } });
}
