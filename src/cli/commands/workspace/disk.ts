import type { Command } from "commander";
import {
  exportWorkspaceDisk,
  listWorkspaceDisk,
  readWorkspaceDisk,
} from "../../../contract/disk.js";
import type { Pyro } from "../../../sdk/pyro.js";
import { action, jsonOption, print, printNote } from "../../action.js";
import { escapeLine, forTerminal } from "../../escape.js";
import { renderTable } from "../../table.js";

/** `pyro workspace disk list | read | export`: a stopped workspace's disk, offline. */
export function registerDisk(workspace: Command, pyro: () => Pyro): void {
  const disk = workspace
    .command("disk")
    .description("Read a stopped workspace's whole root file system offline, from its disk.");
  disk
    .command("list")
    .description(listWorkspaceDisk.description)
    .argument("<workspace_id>")
    .argument("[path]", "an absolute path in the guest's root file system", "/")
    .option("--recursive", "walk subdirectories")
    .option(...jsonOption)
    .action(
      action(
        ([id, path], options) =>
          pyro().listWorkspaceDisk({
            workspace_id: id!,
            path: path!,
            recursive: options.recursive === true,
          }),
        ({ entries, truncated }) => {
          print(
            renderTable(entries, [
              { header: "mode", cell: (e) => e.mode },
              { header: "owner", cell: (e) => `${e.uid}:${e.gid}` },
              { header: "type", cell: (e) => e.artifact_type },
              { header: "size", cell: (e) => String(e.size_bytes), align: "right" },
              {
                header: "path",
                cell: (e) =>
                  e.artifact_type === "directory"
                    ? `${e.path}/`
                    : e.link_target !== null
                      ? `${e.path} -> ${e.link_target}`
                      : e.path,
              },
            ]),
          );
          if (truncated) printNote("(listing truncated)");
        },
      ),
    );
  disk
    .command("read")
    .description(readWorkspaceDisk.description)
    .argument("<workspace_id>")
    .argument("<path>", "an absolute path in the guest's root file system")
    .option("--max-bytes <n>", "read at most this many bytes", (v) => Number.parseInt(v, 10), 65536)
    .option(...jsonOption)
    .action(
      action(
        ([id, path], options) =>
          pyro().readWorkspaceDisk({
            workspace_id: id!,
            path: path!,
            max_bytes: options.maxBytes as number,
          }),
        (result) => {
          if (result.encoding === "utf-8") {
            process.stdout.write(forTerminal(result.content, process.stdout));
          } else if (process.stdout.isTTY) {
            printNote(
              `(binary content, ${result.size_bytes} bytes: redirect stdout or use --json)`,
            );
          } else {
            // Binary bytes go out unchanged when stdout is a file or a pipe, like cat.
            process.stdout.write(Buffer.from(result.content, "base64"));
          }
          if (result.truncated) printNote(`\n(truncated: ${result.size_bytes} bytes in all)`);
        },
      ),
    );
  disk
    .command("export")
    .description(exportWorkspaceDisk.description)
    .argument("<workspace_id>")
    .requiredOption("--output <host_path>", "where to write the ext4 image")
    .option("--overwrite", "replace the host path if it exists")
    .option(...jsonOption)
    .action(
      action(
        ([id], options) =>
          pyro().exportWorkspaceDisk({
            workspace_id: id!,
            output_path: options.output as string,
            overwrite: options.overwrite === true,
          }),
        (r) =>
          print(
            `exported ${r.workspace_id}'s disk to ${escapeLine(r.output_path)} (${r.size_bytes} bytes; ${r.entries} entries, ${r.bytes} bytes of files${r.skipped_entries ? `, ${r.skipped_entries} special entries left out` : ""})`,
          ),
      ),
    );
}
