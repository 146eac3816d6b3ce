import type { Command } from "commander";
import {
  createSnapshot,
  deleteSnapshot,
  diffWorkspace,
  exportWorkspace,
  listSnapshots,
  pushWorkspaceSync,
  resetWorkspace,
} from "../../../contract/workspace.js";
import type { Pyro } from "../../../sdk/pyro.js";
import { action, jsonOption, print, printNote, printRecord } from "../../action.js";
import { escapeLine, forTerminal } from "../../escape.js";
import { snapshotTable } from "../../list-tables.js";

/** `pyro workspace diff | export | sync push | snapshot ... | reset`. */
export function registerContent(workspace: Command, pyro: () => Pyro): void {
  workspace
    .command("diff")
    .description(diffWorkspace.description)
    .argument("<workspace_id>")
    .option(...jsonOption)
    .action(
      action(
        ([id]) => pyro().diffWorkspace({ workspace_id: id! }),
        (d) => {
          const s = d.summary;
          printNote(
            `${s.total} changes: ${s.added} added, ${s.modified} modified, ${s.deleted} deleted, ${s.type_changed} type changed`,
          );
          if (d.patch) process.stdout.write(forTerminal(d.patch, process.stdout));
        },
      ),
    );
  workspace
    .command("export")
    .description(exportWorkspace.description)
    .argument("<workspace_id>")
    .argument("<path>", "a file or directory under /workspace")
    .requiredOption("--output <host_path>", "where to put it on the host")
    .option("--overwrite", "replace the host path if it exists")
    .option(...jsonOption)
    .action(
      action(
        ([id, path], options) =>
          pyro().exportWorkspace({
            workspace_id: id!,
            path: path!,
            output_path: options.output as string,
            overwrite: options.overwrite === true,
          }),
        (r) =>
          print(
            `exported ${escapeLine(r.path)} to ${escapeLine(r.output_path)} (${r.entries} entries, ${r.bytes} bytes)`,
          ),
      ),
    );
  const sync = workspace.command("sync").description("Copy host files into a workspace.");
  sync
    .command("push")
    .description(pushWorkspaceSync.description)
    .argument("<workspace_id>")
    .argument("<source_path>", "a host directory or .tar/.tar.gz/.tgz archive")
    .option("--dest <path>", "where under /workspace", "/workspace")
    .option(...jsonOption)
    .action(
      action(
        ([id, source], options) =>
          pyro().pushWorkspaceSync({
            workspace_id: id!,
            source_path: source!,
            dest: options.dest as string,
          }),
        (r) =>
          print(
            `pushed ${escapeLine(r.source_path)} to ${escapeLine(r.dest)} (${r.entries} entries, ${r.bytes} bytes)`,
          ),
      ),
    );
  const snapshot = workspace
    .command("snapshot")
    .description("Named copies of /workspace to reset to.");
  snapshot
    .command("create")
    .description(createSnapshot.description)
    .argument("<workspace_id>")
    .argument("<name>")
    .option(...jsonOption)
    .action(
      action(
        ([id, name]) => pyro().createSnapshot({ workspace_id: id!, snapshot_name: name! }),
        printRecord,
      ),
    );
  snapshot
    .command("list")
    .description(listSnapshots.description)
    .argument("<workspace_id>")
    .option(...jsonOption)
    .action(
      action(
        ([id]) => pyro().listSnapshots({ workspace_id: id! }),
        ({ snapshots }) => print(snapshotTable(snapshots)),
      ),
    );
  snapshot
    .command("delete")
    .description(deleteSnapshot.description)
    .argument("<workspace_id>")
    .argument("<name>")
    .option(...jsonOption)
    .action(
      action(
        ([id, name]) => pyro().deleteSnapshot({ workspace_id: id!, snapshot_name: name! }),
        printRecord,
      ),
    );
  workspace
    .command("reset")
    .description(resetWorkspace.description)
    .argument("<workspace_id>")
    .option("--snapshot <name>", 'a snapshot name, or "baseline"', "baseline")
    .option(...jsonOption)
    .action(
      action(
        ([id], options) =>
          pyro().resetWorkspace({ workspace_id: id!, snapshot: options.snapshot as string }),
        printRecord,
      ),
    );
}
