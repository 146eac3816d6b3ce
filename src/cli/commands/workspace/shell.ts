import type { Command } from "commander";
import {
  closeShell,
  OpenShellParams,
  openShell,
  ReadShellParams,
  readShell,
  SHELL_SIGNALS,
  signalShell,
  writeShell,
} from "../../../contract/shells.js";
import type { Pyro } from "../../../sdk/pyro.js";
import {
  action,
  collectSecretEnv,
  jsonOption,
  print,
  printNote,
  printRecord,
} from "../../action.js";
import { forTerminal } from "../../escape.js";
import { UsageError } from "../../output.js";
import { addSchemaOptions, schemaOptionValues } from "../../schema-options.js";

const OPEN_FLAGS = ["cwd", "cols", "rows"];
const READ_FLAGS = ["cursor", "max_chars", "plain", "wait_for_idle_ms"];

/** `pyro workspace shell open | read | write | signal | close`. */
export function registerShell(workspace: Command, pyro: () => Pyro): void {
  const shell = workspace
    .command("shell")
    .description("Interactive shells (terminals) in a started workspace.");

  const open = shell
    .command("open")
    .description(openShell.description)
    .argument("<workspace_id>")
    .option(
      "--secret-env <name[=env_var]>",
      "expose a secret as an environment variable (repeatable)",
      collectSecretEnv,
    )
    .option("--id-only", "print only the new shell id")
    .option(...jsonOption);
  addSchemaOptions(open, OpenShellParams, OPEN_FLAGS);
  open.action(
    action(
      ([id], options) =>
        pyro().openShell({
          workspace_id: id!,
          ...schemaOptionValues(options, OPEN_FLAGS),
          secret_env: (options.secretEnv as Record<string, string>) ?? {},
        }),
      (record, options) => (options.idOnly ? print(record.shell_id) : printRecord(record)),
    ),
  );

  const read = shell
    .command("read")
    .description(readShell.description)
    .argument("<workspace_id>")
    .argument("<shell_id>")
    .option(...jsonOption);
  addSchemaOptions(read, ReadShellParams, READ_FLAGS);
  read.action(
    action(
      ([id, shellId], options) =>
        pyro().readShell({
          workspace_id: id!,
          shell_id: shellId!,
          ...schemaOptionValues(options, READ_FLAGS),
        }),
      (result) => {
        // The output as the guest printed it when redirected; escaped on a terminal, where
        // a guest's escape codes would drive the user's own terminal.
        process.stdout.write(forTerminal(result.output, process.stdout));
        const notes = [
          `next_cursor=${result.next_cursor}`,
          ...(result.truncated ? [`truncated (output before ${result.cursor} was dropped)`] : []),
          ...(result.has_more ? ["more output is waiting"] : []),
          ...(result.state === "exited" ? [`exited (exit_code=${result.exit_code ?? "-"})`] : []),
        ];
        printNote(`[shell] ${notes.join(" ")}`);
      },
    ),
  );

  shell
    .command("write")
    .description(writeShell.description)
    .argument("<workspace_id>")
    .argument("<shell_id>")
    .option("--input <text>", "the text to type")
    .option("--no-newline", "do not press Enter after the input")
    .option(...jsonOption)
    .action(
      action(
        ([id, shellId], options) => {
          if (options.input === undefined) throw new UsageError("give the text with --input TEXT");
          return pyro().writeShell({
            workspace_id: id!,
            shell_id: shellId!,
            input: String(options.input),
            append_newline: options.newline !== false,
          });
        },
        (r) => print(`wrote ${r.bytes_written} bytes`),
      ),
    );

  shell
    .command("signal")
    .description(signalShell.description)
    .argument("<workspace_id>")
    .argument("<shell_id>")
    .option(`--signal <name>`, `one of ${SHELL_SIGNALS.join(", ")}`, "INT")
    .option(...jsonOption)
    .action(
      action(
        ([id, shellId], options) =>
          pyro().signalShell({
            workspace_id: id!,
            shell_id: shellId!,
            signal_name: String(options.signal) as (typeof SHELL_SIGNALS)[number],
          }),
        (r) => print(`sent ${r.signal_name} to shell ${r.shell_id}`),
      ),
    );

  shell
    .command("close")
    .description(closeShell.description)
    .argument("<workspace_id>")
    .argument("<shell_id>")
    .option(...jsonOption)
    .action(
      action(
        ([id, shellId]) => pyro().closeShell({ workspace_id: id!, shell_id: shellId! }),
        (r) => print(`closed shell ${r.shell_id}`),
      ),
    );
}
