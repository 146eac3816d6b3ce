import { Option, type Command } from "commander";
import { CreateWorkspaceParams, createWorkspace } from "../../../contract/workspace.js";
import type { Pyro } from "../../../sdk/pyro.js";
import { action, collectList, collectPairs, jsonOption, print, printRecord } from "../../action.js";
import { addSchemaOptions, schemaOptionValues } from "../../schema-options.js";

const FLAG_FIELDS = [
  "name",
  "vcpu_count",
  "mem_mib",
  "ttl_seconds",
  "seed_path",
  "allow_host_compat",
  "cold",
];

/** `pyro workspace create ENV [flags]`. */
export function registerCreate(workspace: Command, pyro: () => Pyro): void {
  const command = workspace
    .command("create")
    .description(createWorkspace.description)
    .argument("<environment>", CreateWorkspaceParams.shape.environment.description)
    .option("--label <key=value>", "a label (repeatable)", collectPairs("--label"))
    .addOption(
      new Option(
        "--network-policy <policy>",
        CreateWorkspaceParams.shape.network_policy.description,
      )
        .choices(CreateWorkspaceParams.shape.network_policy.unwrap().options)
        .default("off"),
    )
    .option(
      "--allow-domain <host>",
      "limit egress to this domain, `*.example.org` for its subdomains (repeatable)",
      collectList,
    )
    .option("--secret <name=value>", "a secret given inline (repeatable)", collectPairs("--secret"))
    .option(
      "--secret-file <name=path>",
      "a secret read from a host file (repeatable)",
      collectPairs("--secret-file"),
    )
    .option("--id-only", "print only the new workspace id")
    .option(...jsonOption);
  addSchemaOptions(command, CreateWorkspaceParams, FLAG_FIELDS);
  command.action(
    action(
      ([environment], options) =>
        pyro().createWorkspace({
          environment: environment!,
          ...schemaOptionValues(options, FLAG_FIELDS),
          labels: (options.label as Record<string, string>) ?? {},
          network_policy: options.networkPolicy as "off",
          allowed_domains: (options.allowDomain as string[] | undefined) ?? [],
          secrets: [
            ...Object.entries((options.secret as Record<string, string>) ?? {}).map(
              ([name, value]) => ({ name, value }),
            ),
            ...Object.entries((options.secretFile as Record<string, string>) ?? {}).map(
              ([name, file_path]) => ({ name, file_path }),
            ),
          ],
        }),
      (record, options) => (options.idOnly ? print(record.workspace_id) : printRecord(record)),
    ),
  );
}
