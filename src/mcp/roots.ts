/**
 * Where the MCP server may touch host paths: its own roots (the directory it was started
 * in, plus `--allow-host-path`) and the client's `roots/list` when the client offers
 * roots. Tool arguments are chosen by a model, which a prompt injection can steer, so
 * `workspace_export` must not be able to overwrite `~/.bashrc` nor `workspace_sync_push`
 * read `~/.ssh`. The check itself is the facade's (`hostPathRoots`).
 */
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { RootsListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { PyroError } from "../contract/errors.js";

/** A client that never answers `roots/list` must not hold a tool call for long. */
const LIST_ROOTS_TIMEOUT_MS = 10_000;

/**
 * The server's own default root: the directory it was started in, as MCP hosts start
 * servers in the project. Not `/`: a host that starts every server there (some desktop
 * apps do) has not named a project, and `/` would allow every path.
 */
export function startDirectoryRoots(cwd = process.cwd()): string[] {
  return cwd === "/" ? [] : [cwd];
}

/**
 * `--allow-host-path` directories as absolute paths, checked when the server starts so a
 * typo fails at once rather than as a refusal later.
 *
 * @throws PyroError `invalid_argument` for a path that is not an existing directory.
 */
export function allowedDirectories(paths: readonly string[], cwd = process.cwd()): string[] {
  return paths.map((path) => {
    const absolute = resolve(cwd, path);
    let isDirectory = false;
    try {
      isDirectory = statSync(absolute).isDirectory();
    } catch {
      // reported below
    }
    if (!isDirectory) {
      throw new PyroError(
        "invalid_argument",
        `--allow-host-path ${path} is not an existing directory; create it or fix the path`,
        { details: { field: "allow_host_path", path } },
      );
    }
    return absolute;
  });
}

/**
 * The client's roots as host directories, asked lazily and kept until the client says
 * they changed (`notifications/roots/list_changed`). A client whose roots capability lacks
 * `listChanged` is asked on every call, since it never announces a change.
 */
export class ClientRoots {
  private cached: Promise<string[]> | undefined;

  constructor(private readonly server: Server) {
    server.setNotificationHandler(RootsListChangedNotificationSchema, () => {
      this.cached = undefined;
    });
  }

  /** The directories of the client's `file://` roots; none when it offers no roots. */
  async directories(): Promise<string[]> {
    const roots = this.server.getClientCapabilities()?.roots;
    if (!roots) return [];
    if (!roots.listChanged) return (await this.fetch()) ?? [];
    if (!this.cached) {
      const asked: Promise<string[]> = this.fetch().then((dirs) => {
        // A failed answer is not kept: the next call asks again.
        if (dirs === undefined && this.cached === asked) this.cached = undefined;
        return dirs ?? [];
      });
      this.cached = asked;
    }
    return this.cached;
  }

  /** `undefined` when `roots/list` failed or timed out (then it counts as no client roots). */
  private async fetch(): Promise<string[] | undefined> {
    try {
      const { roots } = await this.server.listRoots(undefined, {
        timeout: LIST_ROOTS_TIMEOUT_MS,
      });
      return roots.flatMap((root) => directoryOf(root.uri));
    } catch {
      return undefined;
    }
  }
}

/** A `file://` URI's local path; other schemes and remote hosts name no host directory. */
function directoryOf(uri: string): string[] {
  try {
    const url = new URL(uri);
    return url.protocol === "file:" ? [fileURLToPath(url)] : [];
  } catch {
    return [];
  }
}
