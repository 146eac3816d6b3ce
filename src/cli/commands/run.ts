import type { Command } from "commander";
import { RunParams, runInVm } from "../../contract/vm.js";
import type { Pyro } from "../../sdk/pyro.js";
import { passThroughOutput } from "../command-output.js";
import { EXIT, printJson, reportError, UsageError } from "../output.js";
import { addSchemaOptions, schemaOptionValues } from "../schema-options.js";

const FLAG_FIELDS = [
  "vcpu_count",
  "mem_mib",
  "timeout_seconds",
  "ttl_seconds",
  "network",
  "allow_host_compat",
  "cold",
];

/** `pyro run ENV [flags] -- CMD [ARG...]`: exits with the guest command's status. */
export function registerRun(program: Command, pyro: () => Pyro): void {
  const command = program
    .command("run")
    .description(runInVm.description)
    .argument("<environment>", RunParams.shape.environment.description)
    .argument("[command...]", "the command and its arguments, after --")
    .option("--json", "print the result payload as JSON instead of streaming output");
  addSchemaOptions(command, RunParams, FLAG_FIELDS);
  command.action(async (environment: string, argv: string[], options: Record<string, unknown>) => {
    const json = options.json === true;
    try {
      if (!process.argv.includes("--") || argv.length === 0) {
        throw new UsageError("no command given; usage: pyro run ENV [flags] -- CMD [ARG...]");
      }
      const result = await pyro().runInVm(
        { environment, command: argv, ...schemaOptionValues(options, FLAG_FIELDS) },
        json ? {} : passThroughOutput(),
      );
      if (json) printJson(result);
      else if (result.timed_out)
        process.stderr.write(`[run] phase=timeout vm_id=${result.vm_id}\n`);
      process.exitCode = result.exit_code;
    } catch (error) {
      process.exitCode = reportError(error, { json, exitCode: EXIT.pyroFailedInRun });
    }
  });
}
