#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { Pyro } from "../sdk/pyro.js";
import { packageVersion } from "../util/version.js";
import { registerDoctor } from "./commands/doctor.js";
import { registerEnv } from "./commands/env.js";
import { registerMcp } from "./commands/mcp.js";
import { registerRun } from "./commands/run.js";
import { registerWorkspace } from "./commands/workspace/index.js";
import { EXIT } from "./output.js";
import { cliProgress } from "./progress.js";

export function buildProgram(): Command {
  let instance: Pyro | undefined;
  const pyro = () => (instance ??= new Pyro({ progress: cliProgress() }));
  const program = new Command("pyro")
    .description("Run commands in ephemeral microVMs and persistent workspaces.")
    .version(packageVersion)
    .exitOverride()
    .showHelpAfterError();
  registerRun(program, pyro);
  registerEnv(program, pyro);
  registerWorkspace(program, pyro);
  registerDoctor(program, pyro);
  registerMcp(program);
  // Usage errors at any depth come back as exceptions, so one place sets the exit status.
  const overrideAll = (command: Command): void => {
    command.exitOverride();
    command.commands.forEach(overrideAll);
  };
  overrideAll(program);
  return program;
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      const isRun =
        process.argv[2] === "run" ||
        (process.argv[2] === "workspace" && process.argv[3] === "exec");
      const success = error.exitCode === 0;
      process.exitCode = success ? EXIT.ok : isRun ? EXIT.pyroFailedInRun : EXIT.usage;
      return;
    }
    throw error;
  }
}

await main();
