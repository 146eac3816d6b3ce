/**
 * Host-path roots: the check that keeps host paths named in tool calls (seed, sync and
 * export paths) inside the directories a caller allowed. The MCP server uses it because a
 * model, possibly prompt-injected, chooses those arguments; the CLI and the SDK without
 * `hostPathRoots` stay unrestricted.
 */
import { lstat, readlink } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { PyroError } from "../contract/errors.js";
import { isErrno } from "../util/fs.js";

/** Linux's own bound on links followed while resolving one path (MAXSYMLINKS). */
const MAX_LINKS = 40;

/**
 * The host-path params of each facade method, by SDK method name. `secrets.file_path`
 * means the `file_path` of every item of `secrets`. A contract test fails when an
 * operation gains a `*_path` param that is not listed here.
 */
export const HOST_PATH_FIELDS: Readonly<Record<string, readonly string[]>> = {
  createWorkspace: ["seed_path", "secrets.file_path"],
  pushWorkspaceSync: ["source_path"],
  exportWorkspace: ["output_path"],
  exportWorkspaceDisk: ["output_path"],
};

/**
 * The absolute path `path` names once every symlink is followed and every `..` applied
 * where the kernel would apply it (after the link before it is resolved). Unlike
 * `realpath`, a path that does not exist yet resolves too: its existing part is resolved
 * and the rest appended, and a dangling link resolves to where it points (writing through
 * it would create that target). Relative paths start at `cwd`.
 *
 * @throws PyroError `invalid_argument` on a link loop or a path that cannot be inspected.
 */
export async function resolveHostPath(path: string, cwd = process.cwd()): Promise<string> {
  const pending = components(isAbsolute(path) ? path : `${cwd}/${path}`);
  let current = "/";
  let links = 0;
  let missing = false;
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (name === ".") continue;
    if (name === "..") {
      current = dirname(current);
      continue;
    }
    const next = join(current, name);
    const target = missing ? undefined : await linkTarget(next, path);
    if (target === null) missing = true;
    if (typeof target !== "string") {
      current = next;
      continue;
    }
    if (++links > MAX_LINKS) {
      throw new PyroError("invalid_argument", `host path ${path} has a symlink loop`, {
        details: { path },
      });
    }
    pending.push(...components(target));
    if (isAbsolute(target)) current = "/";
  }
  return current;
}

/** Path components in reverse order, so `pop()` yields them first to last. */
function components(path: string): string[] {
  return path
    .split("/")
    .filter((part) => part !== "")
    .reverse();
}

/** A symlink's target, `undefined` for anything else that exists, `null` when missing. */
async function linkTarget(path: string, named: string): Promise<string | undefined | null> {
  try {
    const info = await lstat(path);
    return info.isSymbolicLink() ? await readlink(path) : undefined;
  } catch (error) {
    if (isErrno(error, "ENOENT") || isErrno(error, "ENOTDIR")) return null;
    throw new PyroError("invalid_argument", `cannot inspect host path ${named}: ${String(error)}`, {
      details: { path: named },
      cause: error,
    });
  }
}

/** Whether `path` is `root` or below it; both already resolved. */
function isUnder(path: string, root: string): boolean {
  return root === "/" || path === root || path.startsWith(`${root}/`);
}

/**
 * Resolves `path` and returns the resolved form when it lies under one of `roots`, so
 * the caller goes on with exactly the path that was checked.
 *
 * @throws PyroError `invalid_argument` naming the path, the roots and `--allow-host-path`.
 */
export async function confineHostPath(
  field: string,
  path: string,
  roots: readonly string[],
): Promise<string> {
  const resolved = await resolveHostPath(path);
  const allowed = await Promise.all(roots.map((root) => resolveHostPath(root)));
  if (allowed.some((root) => isUnder(resolved, root))) return resolved;
  const shown = resolved === path ? path : `${path} (resolves to ${resolved})`;
  const listed = allowed.length ? allowed.join(", ") : "none";
  throw new PyroError(
    "invalid_argument",
    `${field} ${shown} is outside the host directories this server may use (${listed}); ` +
      "use a path under one of them, or allow the directory when starting the server with " +
      "`pyro mcp serve --allow-host-path DIR` (repeatable; in the SDK, the hostPathRoots option)",
    { details: { field, path, resolved, roots: allowed } },
  );
}

/** Roots, or a function giving them, asked only when a call carries a host path. */
export type HostPathRoots = readonly string[] | (() => Promise<readonly string[]>);

/**
 * `params` with each host path of `method` (HOST_PATH_FIELDS) replaced by its resolved
 * form, after checking it against `roots`. Non-string values are left for the contract's
 * validation to report.
 */
export async function confineHostPaths<T>(
  method: string,
  params: T,
  roots: HostPathRoots,
): Promise<T> {
  if (params === null || typeof params !== "object") return params;
  let listed: Promise<readonly string[]> | undefined;
  const check = async (field: string, path: string) => {
    listed ??= typeof roots === "function" ? roots() : Promise.resolve(roots);
    return confineHostPath(field, path, await listed);
  };
  const copy: Record<string, unknown> = { ...(params as Record<string, unknown>) };
  for (const field of HOST_PATH_FIELDS[method] ?? []) {
    const [key, inner] = field.split(".") as [string, string | undefined];
    const value = copy[key];
    if (inner === undefined) {
      if (typeof value === "string") copy[key] = await check(key, value);
    } else if (Array.isArray(value)) {
      const items: unknown[] = [];
      for (const item of value) items.push(await confineItem(item, inner, field, check));
      copy[key] = items;
    }
  }
  return copy as T;
}

async function confineItem(
  item: unknown,
  key: string,
  field: string,
  check: (field: string, path: string) => Promise<string>,
): Promise<unknown> {
  if (item === null || typeof item !== "object") return item;
  const value = (item as Record<string, unknown>)[key];
  if (typeof value !== "string") return item;
  return { ...item, [key]: await check(field, value) };
}
