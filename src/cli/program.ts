import { Command } from "commander";
import { Pyro } from "../sdk/pyro.js";
import { packageVersion } from "../util/version.js";
import { cliProgress } from "./progress.js";

type Register = (program: Command, pyro: () => Pyro) => void;

/**
 * The top-level commands, in help order. Each loads only when the command line needs it:
 * a command's flags come from the contract's zod schemas, and loading those for every
 * command would put hundreds of milliseconds on `pyro --version` (issue 10).
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  run: async () => (await import("./commands/run.js")).registerRun,
  env: async () => (await import("./commands/env.js")).registerEnv,
  workspace: async () => (await import("./commands/workspace/index.js")).registerWorkspace,
  doctor: async () => (await import("./commands/doctor.js")).registerDoctor,
  mcp: async () => (await import("./commands/mcp.js")).registerMcp,
};

/**
 * The `pyro` command tree (built without side effects, so tests can inspect it): the
 * whole tree, or with `argv` only the part that command line runs.
 */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  let instance: Pyro | undefined;
  const pyro = () => (instance ??= new Pyro({ progress: cliProgress() }));
  const program = new Command("pyro")
    .description("Run commands in ephemeral microVMs and persistent workspaces.")
    .version(packageVersion)
    .exitOverride()
    .showHelpAfterError();
  for (const name of commandsFor(argv)) (await COMMANDS[name]!())(program, pyro);
  // Usage errors at any depth come back as exceptions, so one place sets the exit status.
  const overrideAll = (command: Command): void => {
    command.exitOverride();
    command.commands.forEach(overrideAll);
  };
  overrideAll(program);
  return program;
}

/**
 * The top-level commands a command line needs: the one it names; none for a bare
 * `--version`; all of them otherwise, so help lists them and a typo gets a suggestion.
 */
export function commandsFor(argv?: readonly string[]): string[] {
  const all = Object.keys(COMMANDS);
  if (!argv) return all;
  const args = argv.slice(2);
  const word = args.find((arg) => !arg.startsWith("-"));
  if (word !== undefined) return word in COMMANDS ? [word] : all;
  const versionOnly = args.length > 0 && args.every((arg) => arg === "--version" || arg === "-V");
  return versionOnly ? [] : all;
}
