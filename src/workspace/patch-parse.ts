/**
 * Reading a unified diff into per-file sections: jsdiff parses the hunks; this module adds
 * what jsdiff skips (git's extended headers), strips `a/`/`b/` prefixes and confines every
 * path to /workspace.
 */

import { parsePatch, type StructuredPatch, type StructuredPatchHunk } from "diff";
import { PyroError } from "../contract/errors.js";
import { readGitPath } from "./git-paths.js";
import { normalizeWorkspacePath, WORKSPACE_ROOT } from "./paths.js";

/** One file's section of a patch: what it does, to which normalized path, with which hunks. */
export interface FileSection {
  kind: "add" | "delete" | "modify";
  path: string;
  hunks: StructuredPatchHunk[];
}

/** A run of patch lines that jsdiff parses on its own: a `diff --git` section, or plain text. */
interface Chunk {
  lines: string[];
  git: boolean;
}

const DEV_NULL = "/dev/null";

/**
 * The file sections of a patch, in order, every path normalized under /workspace.
 *
 * @throws PyroError `invalid_argument` for malformed text, a patch with no file section,
 *   renames, copies, mode changes, binary patches and paths outside /workspace.
 */
export function parsePatchSections(patchText: string): FileSection[] {
  // jsdiff reports malformed text with line numbers; parse the whole text once so they
  // count from the top of the patch, not from the chunk below.
  try {
    parsePatch(patchText);
  } catch (error) {
    const message = (error as Error).message;
    const hint = /hunk/i.test(message)
      ? "; check each @@ -A,B +C,D @@ count against its lines"
      : "";
    throw malformed(`${message.trimEnd()}${hint}`);
  }
  const sections = splitChunks(patchText).flatMap((chunk) => {
    try {
      return chunk.git ? parseGitChunk(chunk.lines) : parsePlainChunk(chunk.lines);
    } catch (error) {
      // jsdiff throws plain Errors; whatever it finds wrong in a chunk is the patch's fault.
      if (error instanceof PyroError) throw error;
      throw malformed((error as Error).message.trimEnd());
    }
  });
  if (sections.length === 0) {
    throw malformed(
      "it has no file sections; give `--- a/PATH` and `+++ b/PATH` headers followed by `@@` hunks",
    );
  }
  return sections;
}

/**
 * Splits at `diff --git` lines, because jsdiff skips git's extended headers (new file
 * mode, rename, binary) that decide what a section means. No hunk line starts with "d",
 * so the split cannot land inside a hunk.
 */
function splitChunks(patchText: string): Chunk[] {
  const chunks: Chunk[] = [{ lines: [], git: false }];
  for (const line of patchText.split("\n")) {
    if (line.startsWith("diff --git ")) chunks.push({ lines: [], git: true });
    (chunks[chunks.length - 1] as Chunk).lines.push(line);
  }
  // jsdiff reads an empty line as an empty context line unless it ends the text; a chunk
  // ends before the next `diff --git` line, not at the end of the patch, so it keeps that.
  for (const chunk of chunks.slice(0, -1)) chunk.lines.push("");
  return chunks;
}

function parsePlainChunk(lines: string[]): FileSection[] {
  const binary = lines.find(isBinaryLine);
  if (binary !== undefined) refuseBinary(binary);
  return plainSections(parseChunk(lines));
}

/**
 * jsdiff's parsePatch plus a check it skips: a side the header counts as one line
 * (`@@ -3 +3 @@`) that has no lines is quietly read as empty, which moves the hunk by a
 * line. GNU patch calls that malformed, and so does this.
 */
function parseChunk(lines: string[]): StructuredPatch[] {
  const patches = parsePatch(lines.join("\n"));
  const counts = lines.flatMap((line) => {
    const header = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/.exec(line);
    return header ? [[Number(header[1] ?? 1), Number(header[2] ?? 1)]] : [];
  });
  const hunks = patches.flatMap((patch) => patch.hunks);
  if (hunks.length !== counts.length)
    throw malformed("a hunk header is not of the form @@ -A,B +C,D @@");
  hunks.forEach((hunk, i) => {
    const [oldCount, newCount] = counts[i] as number[];
    if (hunk.oldLines !== oldCount || hunk.newLines !== newCount) {
      throw malformed(
        `hunk ${i + 1} of a section counts ${oldCount} old and ${newCount} new lines but has ${hunk.oldLines} and ${hunk.newLines}; check each @@ -A,B +C,D @@ count against its lines`,
      );
    }
  });
  return patches;
}

/** Sections with `---`/`+++` headers; text before the first one (a mail, a note) is skipped. */
function plainSections(patches: StructuredPatch[]): FileSection[] {
  return patches
    .filter((patch) => patch.hunks.length > 0 || patch.oldFileName || patch.newFileName)
    .map((patch) => {
      if (patch.oldFileName === undefined || patch.newFileName === undefined) {
        throw malformed("a section lacks its `--- a/PATH` or `+++ b/PATH` header");
      }
      // jsdiff drops the quotes of a C-quoted name but keeps its escapes, so such a name
      // would be misread; git writes them only under a `diff --git` line, read above.
      for (const name of [patch.oldFileName, patch.newFileName]) {
        if (/["\\]/.test(name)) {
          throw unsupported(
            `the section for ${JSON.stringify(name)} has a quoted name without a "diff --git" line; give the git header, or the plain name`,
          );
        }
      }
      return toSection(patch.oldFileName, patch.newFileName, patch.hunks, {});
    });
}

/** Git's extended header lines that matter here (between `diff --git` and the hunks). */
interface GitHeader {
  names: [string, string] | undefined;
  oldName?: string;
  newName?: string;
  newFileMode?: string;
  deletedFileMode?: string;
  oldMode?: string;
  newMode?: string;
  renameOrCopy: boolean;
  binary: boolean;
  /** The `index OLD..NEW` blob ids; all zeros on a side means "no file". */
  index?: [string, string];
  /** Header lines seen more than once (git writes each at most once). */
  repeated: string[];
  /** The first header line git does not write, if any. */
  unknown?: string;
}

/** The extended header lines git writes between `diff --git` and the first hunk. */
const GIT_HEADER_LINE =
  /^(old mode|new mode|deleted file mode|new file mode|copy from|copy to|rename from|rename to|similarity index|dissimilarity index|index|---|\+\+\+) |^(Binary files |GIT binary patch)/;

function parseGitChunk(lines: string[]): FileSection[] {
  const header = readGitHeader(lines);
  // Names come from our own reading of the header lines, which undoes git's C-quoting.
  const oldName = header.oldName ?? header.names?.[0];
  const newName = header.newName ?? header.names?.[1];
  if (oldName === undefined || newName === undefined) {
    throw malformed(`cannot tell which file the section ${JSON.stringify(lines[0])} is for`);
  }
  refuseGitFeatures(header, stripGitPrefixes(oldName, newName)[1]);
  const [first, ...rest] = parseChunk(lines);
  const says = header.newFileMode ?? header.deletedFileMode ?? header.oldMode;
  const hunkCount = first?.hunks.length ?? 0;
  if (says === undefined && hunkCount === 0) {
    throw malformed(`the section ${JSON.stringify(lines[0])} has no hunks and no mode lines`);
  }
  if (hunkCount > 0 && header.oldName === undefined) {
    throw malformed(`the section ${JSON.stringify(lines[0])} has hunks but no ---/+++ lines`);
  }
  const section = toSection(oldName, newName, first?.hunks ?? [], {
    added: header.newFileMode !== undefined,
    deleted: header.deletedFileMode !== undefined,
  });
  return [section, ...plainSections(rest)];
}

function readGitHeader(lines: string[]): GitHeader {
  const header: GitHeader = {
    names: parseGitNames((lines[0] ?? "").slice("diff --git ".length)),
    renameOrCopy: false,
    binary: false,
    repeated: [],
  };
  const seen = new Set<string>();
  const body = lines.slice(1);
  while (body.at(-1)?.trim() === "") body.pop(); // the patch's own final newline
  for (const raw of body) {
    const line = raw.replace(/\r$/, "");
    if (line.startsWith("@@")) break;
    if (!GIT_HEADER_LINE.test(line)) header.unknown ??= line;
    const kind = /^(---|\+\+\+|index|new file mode|deleted file mode|old mode|new mode) /.exec(
      line,
    )?.[1];
    if (kind !== undefined && seen.has(kind)) header.repeated.push(kind);
    if (kind !== undefined) seen.add(kind);
    const index = /^index ([0-9a-f]+)\.\.([0-9a-f]+)/.exec(line);
    if (index) header.index = [index[1] as string, index[2] as string];
    const mode = /^(new file mode|deleted file mode|old mode|new mode) (\d+)$/.exec(line);
    if (mode?.[1] === "new file mode") header.newFileMode = mode[2];
    if (mode?.[1] === "deleted file mode") header.deletedFileMode = mode[2];
    if (mode?.[1] === "old mode") header.oldMode = mode[2];
    if (mode?.[1] === "new mode") header.newMode = mode[2];
    if (/^(rename|copy) (from|to) /.test(line)) header.renameOrCopy = true;
    if (isBinaryLine(line)) header.binary = true;
    if (line.startsWith("--- ")) header.oldName = readGitPath(line.slice(4))?.name;
    if (line.startsWith("+++ ")) header.newName = readGitPath(line.slice(4))?.name;
  }
  return header;
}

/**
 * The two names of a `diff --git a/X b/X` line. Unquoted names may contain spaces, and
 * git writes the same name twice, so the line is split in the middle.
 */
function parseGitNames(text: string): [string, string] | undefined {
  if (text.startsWith('"')) {
    const first = readGitPath(text);
    const second = first && readGitPath(first.rest.trimStart());
    return first && second ? [first.name, second.name] : undefined;
  }
  const middle = (text.length - 1) / 2;
  if (!Number.isInteger(middle) || text[middle] !== " ") return undefined;
  return [text.slice(0, middle), text.slice(middle + 1)];
}

function refuseGitFeatures(header: GitHeader, name: string): void {
  const file = JSON.stringify(name);
  if (header.binary) refuseBinary(name);
  if (header.renameOrCopy) {
    throw unsupported(`${file} is renamed or copied; write it as a deletion and an addition`);
  }
  if (header.oldMode !== header.newMode) {
    throw unsupported(
      `${file} changes mode (${header.oldMode} → ${header.newMode}); the patch tools change file contents only — use workspace exec with chmod`,
    );
  }
  for (const mode of [header.newFileMode, header.deletedFileMode]) {
    if (mode !== undefined && mode !== "100644" && mode !== "100755") {
      throw unsupported(
        `${file} is not a regular file (mode ${mode}); only text files are patched`,
      );
    }
  }
  refuseInconsistentHeader(header, file);
}

/**
 * A git section says whether a file is added or deleted in up to three places (mode line,
 * `index` ids, `---`/`+++` names). When they disagree, or a line is repeated, the section
 * was edited by hand and any reading is a guess: GNU patch, for one, deletes a file whose
 * `index` ends in zeros though no `deleted file mode` line says so. Refuse it instead.
 */
function refuseInconsistentHeader(header: GitHeader, file: string): void {
  if (header.unknown !== undefined) {
    throw malformed(
      `the section for ${file} has a line git does not write before its first hunk: ${JSON.stringify(header.unknown)}`,
    );
  }
  const named = header.names;
  for (const [i, name] of [header.oldName, header.newName].entries()) {
    if (named && name !== undefined && name !== DEV_NULL && name !== named[i]) {
      throw malformed(
        `the section "diff --git" line names ${JSON.stringify(named[i])}, but its ${i === 0 ? "---" : "+++"} line names ${JSON.stringify(name)}`,
      );
    }
  }
  if (header.repeated.length > 0) {
    throw malformed(`the section for ${file} repeats its "${header.repeated[0]}" line`);
  }
  const zeros = (id: string | undefined) => id !== undefined && /^0+$/.test(id);
  const added = header.newFileMode !== undefined;
  const deleted = header.deletedFileMode !== undefined;
  const says = [
    header.index && [zeros(header.index[0]), zeros(header.index[1])],
    header.oldName !== undefined &&
      header.newName !== undefined && [header.oldName === DEV_NULL, header.newName === DEV_NULL],
  ];
  for (const claim of says) {
    if (claim && (claim[0] !== added || claim[1] !== deleted)) {
      throw malformed(
        `the section for ${file} says in one header line that the file is ${added ? "added" : deleted ? "deleted" : "modified"} and in another that it is not`,
      );
    }
  }
  if ((header.oldName === undefined) !== (header.newName === undefined)) {
    throw malformed(
      `the section for ${file} has a "---" line without its "+++" line or the reverse`,
    );
  }
}

function isBinaryLine(line: string): boolean {
  return line.startsWith("GIT binary patch") || /^Binary files .* differ\r?$/.test(line);
}

function refuseBinary(what: string): never {
  throw unsupported(
    `it changes a binary file (${JSON.stringify(what)}); workspace_patch_apply takes text diffs only — use workspace sync push for binary files`,
  );
}

function toSection(
  oldName: string,
  newName: string,
  hunks: StructuredPatchHunk[],
  flags: { added?: boolean; deleted?: boolean },
): FileSection {
  const added = oldName === DEV_NULL || flags.added === true;
  const deleted = newName === DEV_NULL || flags.deleted === true;
  if (added && deleted) throw malformed("a section has /dev/null on both sides");
  const [oldPath, newPath] = stripGitPrefixes(oldName, newName);
  if (!added && !deleted && oldPath !== newPath) {
    throw unsupported(
      `a section names two files (${JSON.stringify(oldPath)} and ${JSON.stringify(newPath)}); renames are not supported — give the same path after --- and +++`,
    );
  }
  const path = normalizeWorkspacePath(added ? newPath : oldPath, "patch file");
  if (path === "") throw malformed(`a section targets ${WORKSPACE_ROOT} itself, not a file`);
  for (const hunk of hunks) {
    if ([hunk.oldStart, hunk.oldLines, hunk.newStart, hunk.newLines].some(Number.isNaN)) {
      throw malformed(`a hunk header for "${path}" is not of the form "@@ -A,B +C,D @@"`);
    }
    // jsdiff stores an empty side's start one higher: `-0,0` is oldStart 1.
    const emptyOld = hunk.oldLines === 0 && hunk.oldStart === 1;
    const emptyNew = hunk.newLines === 0 && hunk.newStart === 1;
    if ((added && !emptyOld) || (deleted && !emptyNew)) {
      throw malformed(
        `a hunk for "${path}", which the section ${added ? "adds" : "deletes"}, does not have ${added ? "-0,0" : "+0,0"} in its header`,
      );
    }
    if (!newlineMarkersAtEnd(hunk.lines)) {
      throw malformed(
        `a "\\ No newline at end of file" line in a hunk for "${path}" does not follow the last line of its side`,
      );
    }
  }
  return { kind: added ? "add" : deleted ? "delete" : "modify", path, hunks };
}

/**
 * `\ No newline at end of file` belongs after the last old line (`-` or context) or the last
 * new line (`+` or context); jsdiff takes it anywhere, and GNU patch calls such a hunk
 * malformed, so a marker followed by a line of the same side is refused here.
 */
function newlineMarkersAtEnd(lines: string[]): boolean {
  return lines.every((line, i) => {
    if (!line.startsWith("\\")) return true;
    const marked = lines[i - 1] ?? "\\";
    if (marked.startsWith("\\")) return false;
    const rest = lines.slice(i + 1).filter((later) => !later.startsWith("\\"));
    // Only new lines may follow the last old line; nothing may follow the last new line.
    return marked.startsWith("-") && rest.every((later) => later.startsWith("+"))
      ? true
      : rest.length === 0;
  });
}

/**
 * Strips git's `a/` and `b/` prefixes when the section uses them (a path "a/x" in a plain
 * `diff -u` section stays "a/x"): each side must carry its prefix or be /dev/null.
 */
function stripGitPrefixes(oldName: string, newName: string): [string, string] {
  const prefixed =
    (oldName.startsWith("a/") || newName.startsWith("b/")) &&
    (oldName === DEV_NULL || oldName.startsWith("a/")) &&
    (newName === DEV_NULL || newName.startsWith("b/"));
  if (!prefixed) return [oldName, newName];
  const strip = (name: string) => (name === DEV_NULL ? name : name.slice(2));
  return [strip(oldName), strip(newName)];
}

function malformed(problem: string): PyroError {
  return new PyroError("invalid_argument", `the patch is not a valid unified diff: ${problem}`);
}

function unsupported(problem: string): PyroError {
  return new PyroError("invalid_argument", `the patch cannot be applied: ${problem}`);
}
