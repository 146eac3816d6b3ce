import type { Command } from "commander";
import {
  inspectEnvironment,
  listEnvironments,
  pruneEnvironments,
  pullEnvironment,
} from "../../contract/environment.js";
import type { Pyro } from "../../sdk/pyro.js";
import { action, jsonOption, print } from "../action.js";
import { environmentTable } from "../list-tables.js";

const mib = (bytes: number | null) =>
  bytes === null ? "-" : `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** `pyro env list | pull ENV | inspect ENV | prune`. */
export function registerEnv(program: Command, pyro: () => Pyro): void {
  const env = program.command("env").description("Manage the environments VMs boot from.");

  env
    .command("list")
    .description(listEnvironments.description)
    .option(...jsonOption)
    .action(
      action(
        () => pyro().listEnvironments(),
        ({ environments }) => print(environmentTable(environments)),
      ),
    );

  env
    .command("pull")
    .description(pullEnvironment.description)
    .argument("<environment>")
    .option(...jsonOption)
    .action(
      action(
        ([environment]) => pyro().pullEnvironment({ environment: environment! }),
        (r) =>
          print(
            `${r.environment}: ${r.status} (${mib(r.manifest.image_size_bytes)}, ` +
              `${r.manifest.packages.length} packages, sha256 ${r.manifest.image_sha256.slice(0, 12)})\n` +
              `memory template: ${r.template.status}` +
              (r.template.key ? ` (key ${r.template.key.slice(0, 12)})` : "") +
              (r.template.reason ? `: ${r.template.reason}` : ""),
          ),
      ),
    );

  env
    .command("inspect")
    .description(inspectEnvironment.description)
    .argument("<environment>")
    .option(...jsonOption)
    .action(
      action(
        ([environment]) => pyro().inspectEnvironment({ environment: environment! }),
        (result) => {
          const lines = [
            `name:        ${result.name}`,
            `description: ${result.description}`,
            `installed:   ${result.installed ? "yes" : `no (run: pyro env pull ${result.name})`}`,
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
          lines.push(`templates:   ${result.templates.length || "none (built on first boot)"}`);
          for (const t of result.templates) {
            lines.push(
              `  ${t.key.slice(0, 12)} ${t.kind} ${t.vcpu_count} vcpu ${t.mem_mib} MiB ${t.acceleration}` +
                `${t.network ? " nic" : ""}, ${mib(t.disk_bytes)} on disk, built ${t.built_at} ` +
                `in ${t.build_ms} ms${t.current ? "" : " (stale: pyro env prune removes it)"}` +
                (t.failure ? `; failed: ${t.failure}` : ""),
            );
          }
          print(lines.join("\n"));
        },
      ),
    );

  env
    .command("prune")
    .description(pruneEnvironments.description)
    .option(...jsonOption)
    .action(
      action(
        () => pyro().pruneEnvironments(),
        (r) => {
          for (const path of r.removed) print(`removed ${path}`);
          print(`freed ${mib(r.freed_bytes)}`);
        },
      ),
    );
}
