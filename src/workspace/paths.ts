import { PyroError } from "../contract/errors.js";

/** The guest directory every workspace file tool is confined to. */
export const WORKSPACE_ROOT = "/workspace";

/** Linux PATH_MAX and NAME_MAX: longer paths fail in the guest anyway, so refuse them early. */
const MAX_PATH_BYTES = 4096;
const MAX_NAME_BYTES = 255;

/**
 * Turns a caller's path (relative to /workspace, or absolute under it) into a normalized
 * relative POSIX path: "/workspace/a/../b" → "b", "a//b/./c" → "a/b/c", "/workspace",
 * "" and "." → "" (the root itself).
 *
 * `..` may never climb above /workspace, even transiently ("a/../../workspace/b" is
 * refused): a path that needs to leave the tree to make sense is a mistake or an attack.
 * Symlinks are not resolved here; the guest checks where they lead.
 *
 * @throws PyroError `invalid_argument` naming `field`, saying what to give instead.
 */
export function normalizeWorkspacePath(input: string, field = "path"): string {
  checkPathText(input, field);
  const parts = input.split("/");
  if (input.startsWith("/")) {
    const rootName = parts.find((part) => part !== "" && part !== ".");
    if (rootName !== WORKSPACE_ROOT.slice(1)) {
      throw invalidPath(
        field,
        input,
        `is outside ${WORKSPACE_ROOT}; give a path relative to ${WORKSPACE_ROOT} (e.g. "src/main.py") or under ${WORKSPACE_ROOT}/`,
      );
    }
    parts.splice(0, parts.indexOf(rootName) + 1);
  }
  return resolveComponents(parts, field, input).join("/");
}

/** The absolute guest path of a normalized relative path ("" is /workspace itself). */
export function guestPath(relative: string): string {
  return relative === "" ? WORKSPACE_ROOT : `${WORKSPACE_ROOT}/${relative}`;
}

/**
 * Where a symlink at `linkPath` (normalized, relative to /workspace) points, as a
 * normalized relative path, or `undefined` when its target leaves /workspace. One hop
 * only: the guest must still check the target's own symlinks.
 */
export function symlinkTargetInWorkspace(linkPath: string, target: string): string | undefined {
  const parent = linkPath.split("/").slice(0, -1).join("/");
  const joined = target.startsWith("/") || parent === "" ? target : `${parent}/${target}`;
  try {
    return normalizeWorkspacePath(joined);
  } catch {
    return undefined;
  }
}

function checkPathText(input: string, field: string): void {
  if (input.includes("\0")) {
    throw invalidPath(field, input, "contains a NUL byte; give a plain path");
  }
  const bytes = Buffer.byteLength(input, "utf8");
  if (bytes > MAX_PATH_BYTES) {
    throw new PyroError(
      "invalid_argument",
      `${field} is ${bytes} bytes long; paths are limited to ${MAX_PATH_BYTES} bytes`,
      { details: { field } },
    );
  }
}

function resolveComponents(parts: string[], field: string, input: string): string[] {
  const resolved: string[] = [];
  for (const part of parts) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (resolved.length === 0) {
        throw invalidPath(
          field,
          input,
          `escapes ${WORKSPACE_ROOT} through ".."; give a path inside ${WORKSPACE_ROOT}`,
        );
      }
      resolved.pop();
      continue;
    }
    if (Buffer.byteLength(part, "utf8") > MAX_NAME_BYTES) {
      throw invalidPath(field, input, `has a name longer than ${MAX_NAME_BYTES} bytes`);
    }
    resolved.push(part);
  }
  return resolved;
}

function invalidPath(field: string, input: string, problem: string): PyroError {
  return new PyroError("invalid_argument", `${field} ${JSON.stringify(input)} ${problem}`, {
    details: { field, value: input },
  });
}
