#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command, CommanderError } from "commander";
import { Pyro } from "../sdk/pyro.js";
import { packageRoot } from "../util/paths.js";
import { registerDoctor } from "./commands/doctor.js";
import { registerEnv } from "./commands/env.js";
import { registerRun } from "./commands/run.js";
import { EXIT } from "./output.js";
import { cliProgress } from "./progress.js";

const { version } = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as {
  version: string;
};

export function buildProgram(): Command {
  let instance: Pyro | undefined;
  const pyro = () => (instance ??= new Pyro({ progress: cliProgress() }));
  const program = new Command("pyro")
    .description("Run commands in ephemeral microVMs and persistent workspaces.")
    .version(version)
    .exitOverride()
    .showHelpAfterError();
  registerRun(program, pyro);
  registerEnv(program, pyro);
  registerDoctor(program, pyro);
  for (const command of program.commands) {
    command.exitOverride();
    for (const sub of command.commands) sub.exitOverride();
  }
  return program;
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      const isRun = process.argv[2] === "run";
      const success = error.exitCode === 0;
      process.exitCode = success ? EXIT.ok : isRun ? EXIT.pyroFailedInRun : EXIT.usage;
      return;
    }
    throw error;
  }
}

await main();
