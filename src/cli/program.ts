import { Command } from "commander";
import { Pyro } from "../sdk/pyro.js";
import { packageVersion } from "../util/version.js";
import { registerDoctor } from "./commands/doctor.js";
import { registerEnv } from "./commands/env.js";
import { registerMcp } from "./commands/mcp.js";
import { registerRun } from "./commands/run.js";
import { registerWorkspace } from "./commands/workspace/index.js";
import { cliProgress } from "./progress.js";

/** The whole `pyro` command tree (built without side effects, so tests can inspect it). */
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
