import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import {
  applyWorkspacePatch,
  listWorkspaceFiles,
  readWorkspaceFile,
  writeWorkspaceFile,
} from "../../../contract/workspace.js";
import type { Pyro } from "../../../sdk/pyro.js";
import { action, jsonOption, print, printNote } from "../../action.js";
import { escapeLine, forTerminal } from "../../escape.js";
import { UsageError } from "../../output.js";

/** Exactly one of an inline text flag and a file flag. */
async function textFrom(inline: unknown, file: unknown, names: [string, string]): Promise<string> {
  if ((inline === undefined) === (file === undefined))
    throw new UsageError(`give exactly one of ${names[0]} and ${names[1]}`);
  if (inline !== undefined) return String(inline);
  return readFile(String(file), "utf8").catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read ${names[1]} ${String(file)}: ${error.code ?? error.message}`);
  });
}

/** `pyro workspace file list | read | write` and `pyro workspace patch apply`. */
export function registerFiles(workspace: Command, pyro: () => Pyro): void {
  const file = workspace.command("file").description("Inspect and edit text files in /workspace.");
  file
    .command("list")
    .description(listWorkspaceFiles.description)
    .argument("<workspace_id>")
    .argument("[path]", "a path under /workspace", "/workspace")
    .option("--recursive", "walk subdirectories")
    .option(...jsonOption)
    .action(
      action(
        ([id, path], options) =>
          pyro().listWorkspaceFiles({
            workspace_id: id!,
            path: path!,
            recursive: options.recursive === true,
          }),
        ({ entries, truncated }) => {
          for (const e of entries) {
            const suffix =
              e.artifact_type === "directory"
                ? "/"
                : e.link_target !== null
                  ? ` -> ${escapeLine(e.link_target)}`
                  : "";
            print(
              `${e.artifact_type.padEnd(9)} ${String(e.size_bytes).padStart(10)}  ${escapeLine(e.path)}${suffix}`,
            );
          }
          if (truncated) printNote("(listing truncated)");
        },
      ),
    );
  file
    .command("read")
    .description(readWorkspaceFile.description)
    .argument("<workspace_id>")
    .argument("<path>")
    .option("--max-bytes <n>", "read at most this many bytes", (v) => Number.parseInt(v, 10), 65536)
    .option(...jsonOption)
    .action(
      action(
        ([id, path], options) =>
          pyro().readWorkspaceFile({
            workspace_id: id!,
            path: path!,
            max_bytes: options.maxBytes as number,
          }),
        (result) => {
          process.stdout.write(forTerminal(result.content, process.stdout));
          if (result.truncated) printNote(`\n(truncated: ${result.size_bytes} bytes in all)`);
        },
      ),
    );
  file
    .command("write")
    .description(writeWorkspaceFile.description)
    .argument("<workspace_id>")
    .argument("<path>")
    .option("--text <text>", "the new content")
    .option("--text-file <file>", "read the new content from a host file")
    .option(...jsonOption)
    .action(
      action(
        async ([id, path], options) =>
          pyro().writeWorkspaceFile({
            workspace_id: id!,
            path: path!,
            text: await textFrom(options.text, options.textFile, ["--text", "--text-file"]),
          }),
        (r) => print(`wrote ${r.bytes_written} bytes to ${escapeLine(r.path)}`),
      ),
    );

  const patch = workspace.command("patch").description("Apply unified diffs to /workspace.");
  patch
    .command("apply")
    .description(applyWorkspacePatch.description)
    .argument("<workspace_id>")
    .option("--patch <text>", "the patch text")
    .option("--patch-file <file>", "read the patch from a host file")
    .option(...jsonOption)
    .action(
      action(
        async ([id], options) =>
          pyro().applyWorkspacePatch({
            workspace_id: id!,
            patch: await textFrom(options.patch, options.patchFile, ["--patch", "--patch-file"]),
          }),
        (r) => {
          for (const e of r.entries) print(`${e.status.padEnd(9)} ${escapeLine(e.path)}`);
          print(
            `${r.summary.total} files: ${r.summary.added} added, ${r.summary.modified} modified, ${r.summary.deleted} deleted`,
          );
        },
      ),
    );
}
