import type { Command } from "commander";
import { ExecWorkspaceParams, execWorkspace } from "../../../contract/workspace.js";
import type { Pyro } from "../../../sdk/pyro.js";
import { collectSecretEnv } from "../../action.js";
import { passThroughOutput } from "../../command-output.js";
import { EXIT, printJson, reportError, UsageError } from "../../output.js";
import { addSchemaOptions, schemaOptionValues } from "../../schema-options.js";

/** `pyro workspace exec ID [flags] -- CMD...`: exits with the command's status, 125 when pyro fails. */
export function registerExec(workspace: Command, pyro: () => Pyro): void {
  const command = workspace
    .command("exec")
    .description(execWorkspace.description)
    .argument("<workspace_id>")
    .argument("[command...]", "the command and its arguments, after --")
    .option("--cwd <path>", ExecWorkspaceParams.shape.cwd.description)
    .option(
      "--secret-env <name[=env_var]>",
      "expose a secret as an environment variable (repeatable)",
      collectSecretEnv,
    )
    .option("--json", "print the result payload as JSON instead of streaming output");
  addSchemaOptions(command, ExecWorkspaceParams, ["timeout_seconds"]);
  command.action(async (workspaceId: string, argv: string[], options: Record<string, unknown>) => {
    const json = options.json === true;
    try {
      if (!process.argv.includes("--") || argv.length === 0) {
        throw new UsageError(
          "no command given; usage: pyro workspace exec ID [flags] -- CMD [ARG...]",
        );
      }
      const result = await pyro().execWorkspace(
        {
          workspace_id: workspaceId,
          command: argv,
          ...schemaOptionValues(options, ["timeout_seconds"]),
          ...(options.cwd ? { cwd: options.cwd as string } : {}),
          secret_env: (options.secretEnv as Record<string, string>) ?? {},
        },
        json ? {} : passThroughOutput(),
      );
      if (json) printJson(result);
      else if (result.timed_out)
        process.stderr.write(
          `[exec] phase=timeout workspace_id=${result.workspace_id} sequence=${result.sequence}\n`,
        );
      process.exitCode = result.exit_code;
    } catch (error) {
      process.exitCode = reportError(error, { json, exitCode: EXIT.pyroFailedInRun });
    }
  });
}
