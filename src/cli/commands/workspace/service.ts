import { InvalidArgumentError, type Command } from "commander";
import {
  listServices,
  logsService,
  startService,
  StartServiceParams,
  statusService,
  stopService,
  type ReadinessValue,
} from "../../../contract/services.js";
import type { Pyro } from "../../../sdk/pyro.js";
import {
  action,
  collectList,
  collectSecretEnv,
  jsonOption,
  print,
  printRecord,
  type Options,
} from "../../action.js";
import { forTerminal } from "../../escape.js";
import { serviceTable } from "../../list-tables.js";
import { UsageError } from "../../output.js";
import { addSchemaOptions, schemaOptionValues } from "../../schema-options.js";

const READY_FLAGS = {
  readyFile: "file",
  readyTcp: "tcp",
  readyHttp: "http",
  readyCommand: "command",
} as const;
const TIMING_FIELDS = ["ready_timeout_seconds", "ready_interval_ms"];

/** `pyro workspace service start | list | status | logs | stop`. */
export function registerService(workspace: Command, pyro: () => Pyro): void {
  const service = workspace
    .command("service")
    .description("Named long-running processes (dev servers, databases) in a workspace.");
  registerStart(service, pyro);
  service
    .command("list")
    .description(listServices.description)
    .argument("<workspace_id>")
    .option(...jsonOption)
    .action(
      action(
        ([id]) => pyro().listServices({ workspace_id: id! }),
        ({ services }) => print(services.length ? serviceTable(services) : "no services"),
      ),
    );
  for (const [verb, op, run] of [
    ["status", statusService, (id: string, name: string) => pyro().statusService(ids(id, name))],
    ["stop", stopService, (id: string, name: string) => pyro().stopService(ids(id, name))],
  ] as const) {
    service
      .command(verb)
      .description(op.description)
      .argument("<workspace_id>")
      .argument("<name>")
      .option(...jsonOption)
      .action(action(([id, name]) => run(id!, name!), printRecord));
  }
  const logs = service
    .command("logs")
    .description(logsService.description)
    .argument("<workspace_id>")
    .argument("<name>")
    .option(...jsonOption);
  addSchemaOptions(logs, logsService.params, ["tail_lines"]);
  logs.action(
    action(
      ([id, name], options) =>
        pyro().logsService({ ...ids(id!, name!), ...schemaOptionValues(options, ["tail_lines"]) }),
      // The service's own output, like `workspace exec`'s: escaped only on a terminal.
      (r) => {
        process.stdout.write(forTerminal(r.stdout, process.stdout));
        process.stderr.write(forTerminal(r.stderr, process.stderr));
      },
    ),
  );
}

function registerStart(service: Command, pyro: () => Pyro): void {
  const start = service
    .command("start")
    .description(startService.description)
    .argument("<workspace_id>")
    .argument("<name>")
    .argument("[command...]", "the command and its arguments, after --")
    .option("--cwd <path>", StartServiceParams.shape.cwd.description)
    .option("--ready-file <path>", "ready once this path exists in the guest")
    .option("--ready-tcp <host:port>", "ready once a TCP connect to HOST:PORT succeeds")
    .option("--ready-http <url>", "ready once this http:// URL answers 2xx/3xx")
    .option("--ready-command <cmd>", "ready once this shell command exits 0")
    .option(
      "--secret-env <name[=env_var]>",
      "expose a secret as an environment variable (repeatable)",
      collectSecretEnv,
    )
    .option("--publish <[host_port:]guest_port>", "publish a guest port (repeatable)", collectList)
    .option(...jsonOption);
  addSchemaOptions(start, StartServiceParams, TIMING_FIELDS);
  start.action(
    action(([id, name, ...rest], options) => {
      const argv = (rest[0] as unknown as string[] | undefined) ?? [];
      if (!process.argv.includes("--") || argv.length === 0) {
        throw new UsageError(
          "no command given; usage: pyro workspace service start ID NAME [flags] -- CMD [ARG...]",
        );
      }
      const readiness = readinessFlag(options);
      return pyro().startService({
        ...ids(id!, name!),
        command: argv,
        ...(options.cwd ? { cwd: options.cwd as string } : {}),
        ...(readiness ? { readiness } : {}),
        ...schemaOptionValues(options, TIMING_FIELDS),
        secret_env: (options.secretEnv as Record<string, string>) ?? {},
        published_ports: ((options.publish as string[]) ?? []).map(parsePublish),
      });
    }, printRecord),
  );
}

/** At most one `--ready-*` flag, as the contract's readiness union. */
export function readinessFlag(options: Options): ReadinessValue | undefined {
  const given = Object.entries(READY_FLAGS).filter(([flag]) => options[flag] !== undefined);
  if (given.length > 1) {
    throw new UsageError(
      `give at most one readiness flag, not ${given.map(([f]) => `--${kebab(f)}`).join(" and ")}`,
    );
  }
  const [flag, type] = given[0] ?? [];
  if (!flag || !type) return undefined;
  const value = options[flag] as string;
  const field = { file: "path", tcp: "address", http: "url", command: "command" }[type];
  return { type, [field]: value } as ReadinessValue;
}

/** `--publish [HOST_PORT:]GUEST_PORT`. */
export function parsePublish(value: string): { guest_port: number; host_port?: number } {
  const match = /^(?:(\d{1,5}):)?(\d{1,5})$/.exec(value);
  if (!match)
    throw new InvalidArgumentError(`--publish needs [HOST_PORT:]GUEST_PORT, got "${value}"`);
  const guest = Number(match[2]);
  return match[1] ? { guest_port: guest, host_port: Number(match[1]) } : { guest_port: guest };
}

function ids(workspaceId: string, name: string) {
  return { workspace_id: workspaceId, service_name: name };
}

function kebab(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
