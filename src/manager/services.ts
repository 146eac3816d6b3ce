import type { z } from "zod";
import { PyroError, isPyroError } from "../contract/errors.js";
import {
  logsService,
  ServiceParams,
  StartServiceParams,
  type ServiceRecordValue,
  type StartServiceParamsValue,
} from "../contract/services.js";
import { WorkspaceIdParams } from "../contract/workspace.js";
import { parseParams } from "../contract/validate.js";
import { guestPath, normalizeWorkspacePath } from "../workspace/paths.js";
import type { Redactor } from "../secrets/redact.js";
import { loadSecrets, resolveSecretEnv } from "../secrets/store.js";
import { redactorOf, redactStrings, withRedactedErrors } from "../secrets/workspace.js";
import {
  channelServiceAgent,
  type AgentService,
  type ServiceAgent,
  type StartRequest,
} from "./service-agent.js";
import {
  describeReadiness,
  readinessArgv,
  waitUntilReady,
  type ReadinessOutcome,
} from "./service-readiness.js";
import {
  clearWaiting,
  isAbandonedStart,
  isLive,
  listServiceRecords,
  loadServiceRecord,
  markWaiting,
  readServiceRecord,
  reconcileRecord,
  refreshServiceCounts,
  writeServiceRecord,
} from "./service-records.js";
import {
  publishAll,
  refuseDuplicateHostPorts,
  refuseUnpublishable,
  unpublishAll,
} from "./service-ports.js";
import type { WorkspaceRecord } from "./workspace-store.js";
import type { WorkspaceManager } from "./workspaces.js";

/** What the service manager needs of the workspace layer (WorkspaceManager in production). */
export interface ServiceHost {
  /** The reconciled record (a paused workspace resumed first), `not_found` for an unknown id. */
  status(workspaceId: string): Promise<WorkspaceRecord>;
  /** Throws `conflict` (with the fix) unless the workspace is started. */
  requireStarted(workspaceId: string): Promise<WorkspaceRecord>;
  withAgent<T>(workspaceId: string, fn: (agent: ServiceAgent) => Promise<T>): Promise<T>;
  touch(workspaceId: string): Promise<void>;
}

export interface ServiceManagerOptions {
  /** Time a service gets between TERM and KILL when pyro stops it. @default 5000 */
  stopGraceMs?: number;
  /** Lines of each log stream quoted in a failed start's error. @default 20 */
  errorTailLines?: number;
}

/**
 * Services: named long-running processes in a workspace's guest. The agent owns the
 * processes and their logs; the host keeps a record per service and brings it in line with
 * the guest's table whenever it is read (a crash or a VM stop is noticed then).
 */
export class ServiceManager {
  private readonly stopGraceMs: number;
  private readonly errorTailLines: number;

  constructor(
    private readonly host: ServiceHost,
    options: ServiceManagerOptions = {},
  ) {
    this.stopGraceMs = options.stopGraceMs ?? 5_000;
    this.errorTailLines = options.errorTailLines ?? 20;
  }

  /**
   * Starts the service and waits for its readiness. Everything the host can check is
   * checked before the guest is asked for anything. A service that does not become ready
   * is stopped, and the error quotes the last check and the tail of its logs.
   */
  async start(input: z.input<typeof StartServiceParams>): Promise<ServiceRecordValue> {
    const params = parseParams(StartServiceParams, input);
    refuseDuplicateHostPorts(params.published_ports);
    const cwd = guestPath(normalizeWorkspacePath(params.cwd, "cwd"));
    // Built before the start: a check that cannot be built must not leave a service behind.
    const check = params.readiness && readinessArgv(params.readiness);
    const id = params.workspace_id;
    refuseUnpublishable(params.published_ports, await this.host.requireStarted(id));
    const secrets = await loadSecrets(id);
    const env = resolveSecretEnv(params.secret_env, secrets);
    const redactor = redactorOf(secrets);
    await this.host.touch(id);
    const start = { name: params.service_name, argv: params.command, cwd };
    return withRedactedErrors(redactor, () =>
      this.startInGuest(params, Object.keys(env).length ? { ...start, env } : start, {
        check,
        redactor,
      }),
    );
  }

  /** The start after its checks; the record shows the command with secrets redacted. */
  private startInGuest(
    params: StartServiceParamsValue,
    start: StartRequest,
    { check, redactor }: { check: string[] | undefined; redactor: Redactor },
  ): Promise<ServiceRecordValue> {
    const id = params.workspace_id;
    const { cwd } = start;
    return this.host.withAgent(id, async (agent) => {
      const started = await agent.start(start).catch((error: unknown) => {
        throw duplicateName(error, id, params.service_name);
      });
      const published = await publishAll(agent, params.published_ports).catch(async (error) => {
        // A service whose ports could not be published is not what was asked for.
        await agent.stop(params.service_name, this.stopGraceMs).catch(() => {});
        throw error;
      });
      const startedAt = new Date(started.started_at_ms).toISOString();
      const record: ServiceRecordValue = {
        workspace_id: id,
        service_name: params.service_name,
        state: params.readiness ? "starting" : "running",
        command: redactStrings(params.command, redactor),
        cwd,
        started_at: startedAt,
        ready_at: params.readiness ? null : startedAt,
        ended_at: null,
        exit_code: null,
        signal: null,
        pid: started.pid,
        readiness: params.readiness ?? null,
        stop_reason: null,
        published_ports: published,
      };
      if (!check) {
        await this.save(record);
        return record;
      }
      await markWaiting(record, params.ready_timeout_seconds * 1000);
      try {
        await this.save(record);
        return await this.awaitReadiness(agent, record, params, check);
      } finally {
        await clearWaiting(record).catch(() => {});
      }
    });
  }

  async list(input: z.input<typeof WorkspaceIdParams>) {
    const { workspace_id: id } = parseParams(WorkspaceIdParams, input);
    return { workspace_id: id, services: await this.reconciled(id) };
  }

  async status(input: z.input<typeof ServiceParams>): Promise<ServiceRecordValue> {
    const params = parseParams(ServiceParams, input);
    // The workspace first: its id is checked there before it becomes part of a path.
    await this.host.status(params.workspace_id);
    await loadServiceRecord(params.workspace_id, params.service_name);
    const records = await this.reconciled(params.workspace_id);
    return records.find((r) => r.service_name === params.service_name)!;
  }

  async logs(input: z.input<typeof logsService.params>) {
    const params = parseParams(logsService.params, input);
    const id = params.workspace_id;
    const workspace = await this.host.status(id);
    await loadServiceRecord(id, params.service_name);
    if (workspace.state !== "started") {
      throw new PyroError(
        "conflict",
        `workspace ${id} is ${workspace.state}; service logs live in the guest and ended with its VM. Start the workspace and the service again to get new logs`,
      );
    }
    const logs = await this.host
      .withAgent(id, (agent) => agent.logs(params.service_name, params.tail_lines))
      .catch((error: unknown) => {
        if (!isPyroError(error) || error.code !== "not_found") throw error;
        throw new PyroError(
          "not_found",
          `the logs of service ${params.service_name} are gone: the guest no longer has it (its VM was restarted since, or 32 newer services took its place); start it again for new logs`,
          { details: { workspace_id: id, service_name: params.service_name }, cause: error },
        );
      });
    const record = await this.status(params);
    const redactor = redactorOf(await loadSecrets(id));
    return {
      workspace_id: id,
      service_name: params.service_name,
      state: record.state,
      ...logs,
      stdout: redactor.redact(logs.stdout),
      stderr: redactor.redact(logs.stderr),
    };
  }

  /** TERM to the service's process group, KILL after the grace period; waits for the end. */
  async stop(input: z.input<typeof ServiceParams>): Promise<ServiceRecordValue> {
    const params = parseParams(ServiceParams, input);
    let reason = "stop requested";
    const record = await this.status(params).catch((error: unknown) => {
      if (!isPyroError(error) || error.code !== "not_found" || !("service_name" in error.details))
        throw error;
      reason = UNRECORDED;
      return this.unrecorded(params.workspace_id, params.service_name, error);
    });
    if (!isLive(record)) return record;
    await this.host.touch(params.workspace_id);
    return this.host.withAgent(params.workspace_id, (agent) => this.stopOne(agent, record, reason));
  }

  /**
   * A running guest service without a host record: its start was interrupted between the
   * guest's start and the record (a killed CLI). Start refuses the name as running and
   * says to stop it first, so stop must find it: it gets a record, from what the guest
   * knows, to be stopped through. Anything else stays `not_found`.
   */
  private async unrecorded(
    workspaceId: string,
    name: string,
    notFound: PyroError,
  ): Promise<ServiceRecordValue> {
    const workspace = await this.host.status(workspaceId);
    if (workspace.state !== "started") throw notFound;
    const guest = (await this.host.withAgent(workspaceId, (agent) => agent.list())).find(
      (s) => s.name === name && s.state === "running",
    );
    if (!guest) throw notFound;
    return {
      workspace_id: workspaceId,
      service_name: name,
      state: "running",
      command: [],
      cwd: "",
      started_at: new Date(guest.started_at_ms).toISOString(),
      ready_at: null,
      ended_at: null,
      exit_code: null,
      signal: null,
      pid: guest.pid,
      readiness: null,
      stop_reason: null,
      published_ports: [],
    };
  }

  /**
   * Stops every service the guest runs before its VM goes away (workspace stop, reset,
   * delete; `agent` is undefined when the VM is not running) and records why. Never
   * throws: the power-off that follows must happen even when the guest does not answer;
   * the records are closed all the same.
   */
  async stopAll(
    workspaceId: string,
    reason: string,
    agent: ServiceAgent | undefined,
  ): Promise<string[]> {
    const records = await listServiceRecords(workspaceId).catch(() => []);
    try {
      if (!agent) throw new Error("the VM is not running");
      const running = (await agent.list()).filter((s) => s.state === "running");
      await Promise.all(running.map((s) => this.stopGuestService(agent, s, records, reason)));
      // Records the stops did not close: services that had ended by themselves keep their
      // own exit status; anything else ended with this VM.
      const guest = await agent.list();
      await this.closeRecords(workspaceId, await listServiceRecords(workspaceId), guest, reason);
      return running.map((s) => s.name);
    } catch {
      await this.closeRecords(workspaceId, records, [], reason).catch(() => {});
      return records.filter(isLive).map((r) => r.service_name);
    }
  }

  private async stopGuestService(
    agent: ServiceAgent,
    guest: AgentService,
    records: ServiceRecordValue[],
    reason: string,
  ): Promise<void> {
    const record = records.find((r) => r.service_name === guest.name && r.pid === guest.pid);
    if (record && isLive(record)) await this.stopOne(agent, record, reason);
    else await agent.stop(guest.name, this.stopGraceMs);
  }

  private async closeRecords(
    workspaceId: string,
    records: ServiceRecordValue[],
    guest: AgentService[],
    reason: string,
  ) {
    for (const record of records.filter(isLive)) {
      const entry = guest.find((s) => s.name === record.service_name);
      await writeServiceRecord(reconcileRecord(record, entry, reason));
    }
    await refreshServiceCounts(workspaceId);
  }

  private async stopOne(
    agent: ServiceAgent,
    record: ServiceRecordValue,
    reason: string,
  ): Promise<ServiceRecordValue> {
    const stopped = await agent.stop(record.service_name, this.stopGraceMs).catch((error) => {
      // The guest dropped the entry (its table keeps 32): nothing is left to stop.
      if (isPyroError(error) && error.code === "not_found") return undefined;
      throw error;
    });
    await unpublishAll(agent, record.published_ports);
    const next: ServiceRecordValue = {
      ...record,
      state: "stopped",
      stop_reason: reason,
      ended_at: new Date().toISOString(),
      exit_code: stopped?.exit_code ?? null,
      signal: stopped?.signal ?? null,
    };
    return this.save(next);
  }

  private async awaitReadiness(
    agent: ServiceAgent,
    record: ServiceRecordValue,
    params: StartServiceParamsValue,
    argv: string[],
  ): Promise<ServiceRecordValue> {
    let lastSeen: AgentService | undefined;
    const outcome = await waitUntilReady({
      probe: (timeoutMs) => agent.probe(argv, record.cwd, timeoutMs),
      stillRunning: async () => {
        lastSeen = (await agent.list()).find((s) => s.name === record.service_name);
        return lastSeen?.pid === record.pid && lastSeen.state === "running";
      },
      timeoutMs: params.ready_timeout_seconds * 1000,
      intervalMs: params.ready_interval_ms,
    });
    if (outcome.ready) {
      const ready = { ...record, state: "running" as const, ready_at: new Date().toISOString() };
      return this.save(ready);
    }
    throw await this.notReady(agent, record, params, outcome, lastSeen);
  }

  /**
   * A start whose service did not become ready: a dead one is recorded as it ended, a
   * live one is stopped. The error says which, with the last check and the log tail.
   */
  private async notReady(
    agent: ServiceAgent,
    record: ServiceRecordValue,
    params: StartServiceParamsValue,
    outcome: Extract<ReadinessOutcome, { ready: false }>,
    lastSeen: AgentService | undefined,
  ): Promise<PyroError> {
    const name = record.service_name;
    const what = describeReadiness(params.readiness!);
    const seconds = params.ready_timeout_seconds;
    let ended: ServiceRecordValue;
    let message: string;
    if (outcome.reason === "exited") {
      const own = reconcileRecord(record, lastSeen, "it ended before it was ready");
      const saved = await this.save(own);
      // Another process stopped it meanwhile (its record wins), or a newer start of the
      // name keeps its own record: this error is about this service either way.
      const stoppedMeanwhile = saved !== own && saved.pid === record.pid;
      ended = stoppedMeanwhile ? saved : own;
      message = stoppedMeanwhile
        ? `service ${name} was stopped (${ended.stop_reason}) before it was ready (${what})`
        : `service ${name} ended (${endedHow(ended)}) before it was ready (${what})`;
    } else {
      ended = await this.stopOne(agent, record, `not ready after ${seconds} s (${what})`);
      message = `service ${name} was not ready after ${seconds} s (${what}); it was stopped`;
    }
    const tail = await this.logTail(agent, name);
    return new PyroError(
      outcome.reason === "exited" ? "guest_error" : "timeout",
      `${message}. Last check: ${outcome.lastError.slice(0, 500)}${tail}`,
      { details: { service: ended, checks: outcome.checks } },
    );
  }

  /** The end of both logs, for an error message; empty when the guest cannot give them. */
  private async logTail(agent: ServiceAgent, name: string): Promise<string> {
    try {
      const logs = await agent.logs(name, this.errorTailLines);
      const part = (label: string, text: string) => {
        const tail = text.trimEnd();
        if (!tail.trim()) return "";
        // Lines can be any length: an error message stays readable, not megabytes.
        const cut = tail.length > ERROR_TAIL_CHARS ? `...${tail.slice(-ERROR_TAIL_CHARS)}` : tail;
        return `\n--- ${label} (last ${this.errorTailLines} lines) ---\n${cut}`;
      };
      return (
        part("stdout", logs.stdout) + part("stderr", logs.stderr) ||
        "\n(the service wrote no output)"
      );
    } catch {
      return "";
    }
  }

  /** Every record of the workspace, brought in line with the guest's table first. */
  private async reconciled(workspaceId: string): Promise<ServiceRecordValue[]> {
    const workspace = await this.host.status(workspaceId);
    const records = await listServiceRecords(workspaceId);
    if (!records.some(isLive)) return records;
    const guest =
      workspace.state === "started"
        ? await this.host.withAgent(workspaceId, (agent) => agent.list())
        : [];
    const reason =
      workspace.state === "started"
        ? "the workspace's VM was restarted"
        : `the workspace is ${workspace.state} (its VM ended)`;
    const next = records.map((r) =>
      reconcileRecord(
        r,
        guest.find((s) => s.name === r.service_name),
        reason,
      ),
    );
    for (const [i, record] of next.entries()) {
      if (await isAbandonedStart(record)) {
        next[i] = await this.host.withAgent(workspaceId, (agent) =>
          this.stopOne(agent, record, ABANDONED_START),
        );
      }
    }
    const changed = next.filter((r, i) => r !== records[i]);
    const endedWithPorts = changed.filter((r) => !isLive(r) && r.published_ports.length);
    if (workspace.state === "started" && endedWithPorts.length)
      await this.host.withAgent(workspaceId, async (agent) => {
        for (const record of endedWithPorts) await unpublishAll(agent, record.published_ports);
      });
    for (const record of changed) await writeServiceRecord(record);
    if (changed.length) await refreshServiceCounts(workspaceId);
    return next;
  }

  /**
   * Writes the record and returns it, unless another process has written a record that
   * must win (then that one is returned): a later start of the same name (after this
   * one's service ended), or the end of this same service (a stop during the readiness
   * wait): an ended service is never made live again, and `stopped` keeps its reason.
   */
  private async save(record: ServiceRecordValue): Promise<ServiceRecordValue> {
    const current = await readServiceRecord(record.workspace_id, record.service_name);
    if (current && supersedes(current, record)) return current;
    await writeServiceRecord(record);
    await refreshServiceCounts(record.workspace_id);
    return record;
  }
}

/** Why a service pyro had no record of was stopped (see ServiceManager.unrecorded). */
const UNRECORDED =
  "stop requested (pyro had no record of it: the command that started it was interrupted)";

/** Characters of each log stream quoted in a failed start's error, at most. */
const ERROR_TAIL_CHARS = 4_000;

/**
 * Why a service whose start nobody waits for any more is stopped when it is next read: a
 * start ends ready or with the service stopped, also when its CLI was killed midway.
 */
const ABANDONED_START =
  "its start was abandoned before it was ready (the process waiting for readiness ended)";

/** The agent's `busy` for a name already running, with the workspace and the fix. */
function duplicateName(error: unknown, workspaceId: string, name: string): unknown {
  if (!isPyroError(error) || error.code !== "busy" || !/already running/.test(error.message))
    return error;
  return new PyroError(
    "busy",
    `service ${name} is already running in workspace ${workspaceId}; stop it first (service_stop) or choose another name`,
    { details: { workspace_id: workspaceId, service_name: name }, cause: error },
  );
}

function supersedes(current: ServiceRecordValue, next: ServiceRecordValue): boolean {
  if (current.pid !== next.pid) return current.started_at >= next.started_at;
  if (isLive(current)) return false;
  return isLive(next) || (current.state === "stopped" && next.state === "exited");
}

function endedHow(record: ServiceRecordValue): string {
  if (record.exit_code !== null) return `exit code ${record.exit_code}`;
  return record.signal ? `signal ${record.signal}` : "it is gone";
}

/**
 * The service manager of a workspace manager: the agent reached through the shim, and
 * every service stopped (and recorded) before a workspace stop, reset or delete.
 */
export function workspaceServices(workspaces: WorkspaceManager): ServiceManager {
  const services = new ServiceManager(workspaceServiceHost(workspaces));
  workspaces.onBeforeStop(async ({ id, reason, guest }) => {
    await services.stopAll(id, `workspace ${reason}`, guest && channelServiceAgent(guest));
  });
  return services;
}

function workspaceServiceHost(workspaces: WorkspaceManager): ServiceHost {
  return {
    status: (id) => workspaces.active(id),
    requireStarted: (id) => workspaces.requireStarted(id),
    withAgent: (id, fn) => workspaces.withGuest(id, (client) => fn(channelServiceAgent(client))),
    touch: (id) => workspaces.touch(id),
  };
}
