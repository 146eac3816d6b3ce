import { createHash } from "node:crypto";
import { formatPatch, OMIT_HEADERS, structuredPatch, type StructuredPatchHunk } from "diff";
import { quoteGitPath } from "./git-paths.js";
import { tryDecodeUtf8 } from "./text.js";
import type { Tree, TreeEntry } from "./tree.js";

export type DiffStatus = "added" | "modified" | "deleted" | "type_changed";

export interface WorkspaceDiffEntry {
  path: string;
  status: DiffStatus;
  /** The entry's type now (its old type when deleted). */
  artifact_type: TreeEntry["type"];
  /** Set when either side is binary: not UTF-8 text, or holding a NUL byte. */
  binary?: boolean;
  /** This entry's part of `patch`, for text files. */
  text_patch?: string;
}

export interface WorkspaceDiff {
  changed: boolean;
  summary: {
    total: number;
    added: number;
    modified: number;
    deleted: number;
    type_changed: number;
  };
  /** Sorted by path. Directories appear only when added or deleted. */
  entries: WorkspaceDiffEntry[];
  /** One git-style unified diff that `patch -p1` applies to the baseline (text files). */
  patch: string;
}

/** Lines of context around each change, as `diff -u` and `git diff` write. */
const CONTEXT_LINES = 3;
/**
 * Myers' diff costs about (lines × edits); past this many edits a file's change is shown
 * as "all old lines out, all new lines in", which is just as valid and takes linear time.
 */
const MAX_EDIT_LENGTH = 2000;

const DEV_NULL = "/dev/null";
const NULL_BLOB = "0000000";

/** A file's section of the patch. */
interface FileSection {
  text: string;
  binary: boolean;
  /** Deletions go first so `patch` can replace a deleted file's path with a directory. */
  deletes: boolean;
}

/**
 * Compares two trees. Text files get git-style sections (`diff --git`, `new file mode`,
 * `index`, `---`/`+++`, hunks, `\ No newline at end of file`) so both `patch -p1` and
 * `git apply` take the patch; a file whose only change is its executable bit gets
 * `old mode`/`new mode`. Binary files are marked and get a `Binary files ... differ`
 * line, which `patch` skips. Symlinks and empty directories cannot be expressed in a text
 * patch: they appear in `entries` only.
 */
export function diffTrees(baseline: Tree, current: Tree): WorkspaceDiff {
  const paths = [...new Set([...baseline.keys(), ...current.keys()])].sort();
  const entries: WorkspaceDiffEntry[] = [];
  const sections: FileSection[] = [];
  for (const path of paths) {
    const before = baseline.get(path);
    const after = current.get(path);
    const status = statusOf(before, after);
    if (status === undefined) continue;
    const entry: WorkspaceDiffEntry = {
      path,
      status,
      artifact_type: ((after ?? before) as TreeEntry).type,
    };
    const section = fileSection(path, asFile(before), asFile(after));
    if (section?.binary) entry.binary = true;
    else if (section) entry.text_patch = section.text;
    if (section) sections.push(section);
    entries.push(entry);
  }
  const count = (status: DiffStatus) => entries.filter((e) => e.status === status).length;
  return {
    changed: entries.length > 0,
    summary: {
      total: entries.length,
      added: count("added"),
      modified: count("modified"),
      deleted: count("deleted"),
      type_changed: count("type_changed"),
    },
    entries,
    patch: [...sections.filter((s) => s.deletes), ...sections.filter((s) => !s.deletes)]
      .map((s) => s.text)
      .join(""),
  };
}

function statusOf(before?: TreeEntry, after?: TreeEntry): DiffStatus | undefined {
  if (!before) return after ? "added" : undefined;
  if (!after) return "deleted";
  if (before.type !== after.type) return "type_changed";
  if (before.type === "symlink" && after.type === "symlink") {
    return before.target === after.target ? undefined : "modified";
  }
  if (before.type === "file" && after.type === "file") {
    const same = before.content.equals(after.content) && gitMode(before) === gitMode(after);
    return same ? undefined : "modified";
  }
  return undefined; // a directory that is still a directory: its contents speak for it
}

type FileEntry = Extract<TreeEntry, { type: "file" }>;

function asFile(entry?: TreeEntry): FileEntry | undefined {
  return entry?.type === "file" ? entry : undefined;
}

/** The section for a file that changed, was added or was deleted (a type change is one of the two). */
function fileSection(path: string, before?: FileEntry, after?: FileEntry): FileSection | undefined {
  if (!before && !after) return undefined;
  const oldName = before ? `a/${path}` : DEV_NULL;
  const newName = after ? `b/${path}` : DEV_NULL;
  const oldText = before ? tryDecodeUtf8(before.content) : "";
  const newText = after ? tryDecodeUtf8(after.content) : "";
  if (oldText === undefined || newText === undefined) {
    // No `diff --git` header here: with one, GNU patch would create or fail to delete the
    // file; without one it skips the line as commentary.
    const text = `Binary files ${quoteGitPath(oldName)} and ${quoteGitPath(newName)} differ\n`;
    return { text, binary: true, deletes: !after };
  }
  const lines = [
    `diff --git ${quoteGitPath(`a/${path}`)} ${quoteGitPath(`b/${path}`)}`,
    ...modeLines(before, after),
  ];
  const contentChanged = !before || !after || !before.content.equals(after.content);
  if (contentChanged) lines.push(indexLine(before, after));
  const hunks = oldText === newText ? "" : formatHunks(oldText, newText);
  if (hunks !== "") lines.push(`--- ${headerName(oldName)}`, `+++ ${headerName(newName)}`);
  return { text: `${lines.join("\n")}\n${hunks}`, binary: false, deletes: !after };
}

function modeLines(before?: FileEntry, after?: FileEntry): string[] {
  if (!before) return [`new file mode ${gitMode(after as FileEntry)}`];
  if (!after) return [`deleted file mode ${gitMode(before)}`];
  if (gitMode(before) === gitMode(after)) return [];
  return [`old mode ${gitMode(before)}`, `new mode ${gitMode(after)}`];
}

/**
 * Git's `index OLD..NEW [MODE]` line with abbreviated blob ids. GNU patch needs it to
 * delete an empty file (it recognizes the empty blob); git apply uses it for --3way.
 */
function indexLine(before?: FileEntry, after?: FileEntry): string {
  const ids = `${before ? blobId(before.content) : NULL_BLOB}..${after ? blobId(after.content) : NULL_BLOB}`;
  const sameMode = before && after && gitMode(before) === gitMode(after);
  return sameMode ? `index ${ids} ${gitMode(before)}` : `index ${ids}`;
}

/** Git tracks only whether a regular file is executable. */
function gitMode(file: FileEntry): string {
  return file.mode & 0o111 ? "100755" : "100644";
}

function blobId(content: Buffer): string {
  const hash = createHash("sha1").update(`blob ${content.length}\0`).update(content);
  return hash.digest("hex").slice(0, 7);
}

/** A `---`/`+++` name; git ends one holding a space with a tab so `patch` reads it whole. */
function headerName(name: string): string {
  const quoted = quoteGitPath(name);
  return quoted === name && name.includes(" ") ? `${name}\t` : quoted;
}

function formatHunks(oldText: string, newText: string): string {
  const patch = structuredPatch("", "", oldText, newText, undefined, undefined, {
    context: CONTEXT_LINES,
    maxEditLength: MAX_EDIT_LENGTH,
  });
  const hunks = patch?.hunks ?? [replacementHunk(oldText, newText)];
  return formatPatch({ ...emptyPatch(), hunks }, OMIT_HEADERS);
}

/** One hunk replacing every line: jsdiff's own one-sided diffs, which take linear time. */
function replacementHunk(oldText: string, newText: string): StructuredPatchHunk {
  const removal = structuredPatch("", "", oldText, "", undefined, undefined, { context: 0 });
  const addition = structuredPatch("", "", "", newText, undefined, undefined, { context: 0 });
  const removed = removal.hunks[0];
  const added = addition.hunks[0];
  return {
    oldStart: 1,
    oldLines: removed?.oldLines ?? 0,
    newStart: 1,
    newLines: added?.newLines ?? 0,
    lines: [...(removed?.lines ?? []), ...(added?.lines ?? [])],
  };
}

function emptyPatch() {
  return {
    oldFileName: "",
    newFileName: "",
    oldHeader: undefined,
    newHeader: undefined,
    hunks: [],
  };
}
