import type { Command } from "commander";
import {
  inspectEnvironment,
  listEnvironments,
  pruneEnvironments,
  pullEnvironment,
} from "../../contract/environment.js";
import type { Pyro } from "../../sdk/pyro.js";
import { printJson, reportError } from "../output.js";

const mib = (bytes: number | null) =>
  bytes === null ? "-" : `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** `pyro env list | pull ENV | inspect ENV | prune`. */
export function registerEnv(program: Command, pyro: () => Pyro): void {
  const env = program.command("env").description("Manage the environments VMs boot from.");
  const action =
    <A extends unknown[]>(fn: (json: boolean, ...args: A) => Promise<void>) =>
    async (...args: [...A, { json?: boolean }]) => {
      const options = args[args.length - 2] as { json?: boolean };
      try {
        await fn(options.json === true, ...(args.slice(0, -2) as A));
      } catch (error) {
        process.exitCode = reportError(error, { json: options.json === true });
      }
    };

  env
    .command("list")
    .description(listEnvironments.description)
    .option("--json", "print JSON")
    .action(
      action(async (json) => {
        const result = await pyro().listEnvironments();
        if (json) return printJson(result);
        for (const e of result.environments) {
          const state = e.installed ? `built ${mib(e.image_size_bytes)}` : "not built";
          process.stdout.write(`${e.name.padEnd(18)} ${state.padEnd(16)} ${e.description}\n`);
        }
      }),
    );

  env
    .command("pull")
    .description(pullEnvironment.description)
    .argument("<environment>")
    .option("--json", "print JSON")
    .action(
      action(async (json, environment: string) => {
        const result = await pyro().pullEnvironment({ environment });
        if (json) return printJson(result);
        process.stdout.write(
          `${result.environment}: ${result.status} (${mib(result.manifest.image_size_bytes)}, ` +
            `${result.manifest.packages.length} packages, sha256 ${result.manifest.image_sha256.slice(0, 12)})\n`,
        );
      }),
    );

  env
    .command("inspect")
    .description(inspectEnvironment.description)
    .argument("<environment>")
    .option("--json", "print JSON")
    .action(
      action(async (json, environment: string) => {
        const result = await pyro().inspectEnvironment({ environment });
        if (json) return printJson(result);
        const lines = [
          `name:        ${result.name}`,
          `description: ${result.description}`,
          `installed:   ${result.installed ? "yes" : "no (run: pyro env pull " + result.name + ")"}`,
          `recipe:      ${result.recipe.suite} ${result.recipe.variant} + ${result.recipe.packages.join(", ") || "nothing"}`,
        ];
        const m = result.manifest;
        if (m) {
          lines.push(
            `image:       ${result.image_path} (${mib(m.image_size_bytes)}, sha256 ${m.image_sha256})`,
            `packages:    ${m.packages.length}`,
            `kernel:      ${m.kernel_version}`,
            `agent:       ${m.agent_version}`,
            `built:       ${m.built_at} in ${m.build_seconds}s from ${m.mirror}`,
          );
        }
        process.stdout.write(`${lines.join("\n")}\n`);
      }),
    );

  env
    .command("prune")
    .description(pruneEnvironments.description)
    .option("--json", "print JSON")
    .action(
      action(async (json) => {
        const result = await pyro().pruneEnvironments();
        if (json) return printJson(result);
        for (const path of result.removed) process.stdout.write(`removed ${path}\n`);
        process.stdout.write(`freed ${mib(result.freed_bytes)}\n`);
      }),
    );
}
