import type { Command } from "commander";
import {
  deleteWorkspace,
  forkWorkspace,
  listWorkspaces,
  logsWorkspace,
  pauseWorkspace,
  resumeWorkspace,
  startWorkspace,
  StartWorkspaceParams,
  statusWorkspace,
  stopWorkspace,
  updateWorkspace,
} from "../../../contract/workspace.js";
import type { Pyro } from "../../../sdk/pyro.js";
import {
  action,
  collectList,
  collectPairs,
  jsonOption,
  print,
  printNote,
  printRecord,
} from "../../action.js";
import { workspaceTable } from "../../list-tables.js";
import { escapeLine } from "../../escape.js";

/** `pyro workspace list | status | logs | delete | stop | start | pause | resume | fork | update`. */
export function registerLifecycle(workspace: Command, pyro: () => Pyro): void {
  workspace
    .command("list")
    .description(listWorkspaces.description)
    .option(...jsonOption)
    .action(
      action(
        () => pyro().listWorkspaces(),
        ({ workspaces }) => print(workspaces.length ? workspaceTable(workspaces) : "no workspaces"),
      ),
    );

  for (const [verb, op, run] of [
    ["status", statusWorkspace, (id: string) => pyro().statusWorkspace({ workspace_id: id })],
    ["stop", stopWorkspace, (id: string) => pyro().stopWorkspace({ workspace_id: id })],
    ["delete", deleteWorkspace, (id: string) => pyro().deleteWorkspace({ workspace_id: id })],
    ["pause", pauseWorkspace, (id: string) => pyro().pauseWorkspace({ workspace_id: id })],
    ["resume", resumeWorkspace, (id: string) => pyro().resumeWorkspace({ workspace_id: id })],
  ] as const) {
    workspace
      .command(verb)
      .description(op.description)
      .argument("<workspace_id>")
      .option(...jsonOption)
      .action(action(([id]) => run(id!), printRecord));
  }

  workspace
    .command("start")
    .description(startWorkspace.description)
    .argument("<workspace_id>")
    .option("--cold", StartWorkspaceParams.shape.cold.description)
    .option(...jsonOption)
    .action(
      action(
        ([id], options) =>
          pyro().startWorkspace({ workspace_id: id!, cold: options.cold === true }),
        printRecord,
      ),
    );

  workspace
    .command("fork")
    .description(forkWorkspace.description)
    .argument("<workspace_id>")
    .option("--name <name>", "a name for the new workspace")
    .option("--id-only", "print only the new workspace id")
    .option(...jsonOption)
    .action(
      action(
        ([id], options) =>
          pyro().forkWorkspace({
            workspace_id: id!,
            ...(options.name !== undefined ? { name: options.name as string } : {}),
          }),
        (record, options) => (options.idOnly ? print(record.workspace_id) : printRecord(record)),
      ),
    );

  workspace
    .command("logs")
    .description(logsWorkspace.description)
    .argument("<workspace_id>")
    .option("--limit <n>", "most recent entries", (v) => Number.parseInt(v, 10), 50)
    .option(...jsonOption)
    .action(
      action(
        ([id], options) =>
          pyro().logsWorkspace({ workspace_id: id!, limit: options.limit as number }),
        ({ entries, network_refusals }) => {
          for (const e of entries) {
            print(
              `#${e.sequence} [exit ${e.exit_code}${e.timed_out ? ", timed out" : ""}] ${escapeLine(e.cwd)}$ ${escapeLine(e.command.join(" "))}`,
            );
            if (e.stdout_tail) print(e.stdout_tail);
            if (e.stderr_tail) printNote(e.stderr_tail);
          }
          if (network_refusals.length) print("network refusals:");
          for (const line of network_refusals) print(`  ${escapeLine(line)}`);
        },
      ),
    );

  workspace
    .command("update")
    .description(updateWorkspace.description)
    .argument("<workspace_id>")
    .option("--name <name>", "new name")
    .option("--label <key=value>", "set a label (repeatable)", collectPairs("--label"))
    .option("--clear-label <key>", "remove a label (repeatable)", collectList)
    .option(...jsonOption)
    .action(
      action(
        ([id], options) =>
          pyro().updateWorkspace({
            workspace_id: id!,
            ...(options.name !== undefined ? { name: options.name as string } : {}),
            labels: (options.label as Record<string, string>) ?? {},
            clear_labels: (options.clearLabel as string[]) ?? [],
          }),
        printRecord,
      ),
    );
}
