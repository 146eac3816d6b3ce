/**
 * Reading a pyro-made archive (a workspace's baseline) without unpacking it: its
 * manifest, and the entries at some paths. The diff needs only these, and unpacking
 * thousands of files to read a handful was most of its cost.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { Parser, type ReadEntry } from "tar";
import { asPyroError, PyroError } from "../contract/errors.js";
import type { ArchiveLimits } from "./limits.js";
import type { Manifest } from "./manifest.js";
import type { Tree } from "./tree.js";

/**
 * The modes extraction gives (archive.ts KEPT_MODE_BITS), so that a scanned entry is what
 * an extracted one would be: the diff compares them with a captured tree.
 */
const fileMode = (mode = 0o644) => (mode & 0o755) | 0o600;
const directoryMode = (mode = 0o755) => (mode | 0o700) & 0o755;

/** The manifest of a pyro-made archive: every entry, files hashed as they stream by. */
export async function manifestOfArchive(path: string, limits: ArchiveLimits): Promise<Manifest> {
  const manifest: Manifest = new Map();
  await scanArchive(path, limits, async (name, info, body) => {
    if (info.type !== "file") {
      manifest.set(name, info);
      body.resume();
      return;
    }
    const hash = createHash("sha256");
    let size = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
    manifest.set(name, { ...info, size, sha256: hash.digest("hex") });
  });
  return manifest;
}

/**
 * The entries of a pyro-made archive at `paths`, file contents read into memory (at
 * most `limits.maxTotalBytes` of them).
 */
export async function readArchivePaths(
  path: string,
  paths: Set<string>,
  limits: ArchiveLimits,
): Promise<Tree> {
  const tree: Tree = new Map();
  let bytes = 0;
  await scanArchive(path, limits, async (name, info, body) => {
    if (!paths.has(name) || info.type !== "file") {
      if (paths.has(name) && info.type !== "file") tree.set(name, info);
      body.resume();
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > limits.maxTotalBytes) {
        throw damaged(path, `more than ${limits.maxTotalBytes} bytes of changed files`);
      }
      chunks.push(chunk);
    }
    tree.set(name, { type: "file", content: Buffer.concat(chunks), mode: info.mode });
  });
  return tree;
}

type ScannedInfo =
  | { type: "file"; mode: number }
  | { type: "directory"; mode: number }
  | { type: "symlink"; target: string };

type Visit = (name: string, info: ScannedInfo, body: ReadEntry) => Promise<void>;

/**
 * Calls `visit` for each entry in archive order (each awaited before the next), with the
 * path as extraction names it (no `./`, no trailing `/`). Only the types pyro packs are
 * accepted: the archive is pyro's own, so anything else means it is damaged.
 */
async function scanArchive(path: string, limits: ArchiveLimits, visit: Visit): Promise<void> {
  const parser = new Parser({ strict: true, zstd: false });
  let entries = 0;
  let queue: Promise<void> = Promise.resolve();
  let failure: unknown;
  parser.on("entry", (body: ReadEntry) => {
    entries += 1;
    const name = body.path
      .split("/")
      .filter((part) => part !== "" && part !== ".")
      .join("/");
    const info = infoOf(body);
    const problem =
      entries > limits.maxEntries
        ? `more than ${limits.maxEntries} entries`
        : !info || name.split("/").includes("..")
          ? `an entry it should not (${JSON.stringify(body.path)}, ${body.type})`
          : undefined;
    if (problem) failure ??= damaged(path, problem);
    if (failure || !info || name === "") {
      body.resume(); // an unread entry would stall the parser
      return;
    }
    queue = queue
      .then(() => (failure ? void body.resume() : visit(name, info, body)))
      .catch((error: unknown) => {
        failure ??= error;
        body.resume();
      });
  });
  await new Promise<void>((resolve, reject) => {
    const source = createReadStream(path);
    source.on("error", (error) => reject(asPyroError(error, `reading ${path}`)));
    parser.on("error", (error: Error) => {
      // node-tar calls an archive of nothing but end blocks "unrecognized"; it is empty.
      if (entries === 0 && /Unrecognized archive/.test(error.message)) return;
      reject(damaged(path, `bad tar data (${error.message})`));
    });
    parser.on("end", resolve);
    source.pipe(parser);
  });
  await queue;
  if (failure) throw failure;
}

function infoOf(body: ReadEntry): ScannedInfo | undefined {
  if (body.type === "File" || body.type === "OldFile" || body.type === "ContiguousFile") {
    return { type: "file", mode: fileMode(body.mode) };
  }
  if (body.type === "Directory") return { type: "directory", mode: directoryMode(body.mode) };
  if (body.type === "SymbolicLink") return { type: "symlink", target: body.linkpath ?? "" };
  return undefined;
}

function damaged(path: string, problem: string): PyroError {
  return new PyroError(
    "internal",
    `the workspace archive ${path} holds ${problem}; reset the workspace to a snapshot or recreate it`,
  );
}
