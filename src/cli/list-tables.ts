import type { z } from "zod";
import type { EnvironmentSummary } from "../contract/environment.js";
import type { ServiceRecord } from "../contract/services.js";
import type { SnapshotInfo, WorkspaceRecord } from "../contract/workspace.js";
import { formatAge, formatBytes, renderTable, type Column } from "./table.js";

/**
 * The human form of each list command: the few columns a person scans, one row per item.
 * `--json` prints the SDK's payload instead, with every field.
 */

type Environment = z.output<typeof EnvironmentSummary>;
type Workspace = z.output<typeof WorkspaceRecord>;
type Snapshot = z.output<typeof SnapshotInfo>;
type Service = z.output<typeof ServiceRecord>;

export function environmentTable(environments: readonly Environment[]): string {
  const columns: Column<Environment>[] = [
    { header: "name", cell: (e) => e.name },
    { header: "built", cell: (e) => (e.installed ? "yes" : "no") },
    { header: "size", cell: (e) => formatBytes(e.image_size_bytes), align: "right" },
    { header: "description", cell: (e) => e.description },
  ];
  return renderTable(environments, columns);
}

export function workspaceTable(workspaces: readonly Workspace[], now = new Date()): string {
  const columns: Column<Workspace>[] = [
    { header: "id", cell: (w) => w.workspace_id },
    { header: "name", cell: (w) => w.name ?? "" },
    { header: "state", cell: (w) => w.state },
    { header: "environment", cell: (w) => w.environment },
    { header: "network", cell: (w) => w.network_policy },
    { header: "last active", cell: (w) => formatAge(w.last_activity_at, now) },
    { header: "labels", cell: (w) => labelsCell(w.labels) },
  ];
  return renderTable(workspaces, columns);
}

export function snapshotTable(snapshots: readonly Snapshot[], now = new Date()): string {
  const columns: Column<Snapshot>[] = [
    { header: "name", cell: (s) => s.snapshot_name },
    { header: "kind", cell: (s) => s.kind },
    { header: "size", cell: (s) => formatBytes(s.size_bytes), align: "right" },
    { header: "created", cell: (s) => formatAge(s.created_at, now) },
  ];
  return renderTable(snapshots, columns);
}

export function serviceTable(services: readonly Service[]): string {
  const columns: Column<Service>[] = [
    { header: "name", cell: (s) => s.service_name },
    { header: "state", cell: (s) => s.state },
    { header: "pid", cell: (s) => (s.pid === null ? "" : String(s.pid)), align: "right" },
    { header: "exit", cell: exitCell },
    { header: "ports", cell: (s) => s.published_ports.map(portCell).join(",") },
    { header: "command", cell: (s) => s.command.join(" ") },
  ];
  return renderTable(services, columns);
}

function labelsCell(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(",");
}

/** How a service ended: its exit code, or the signal that ended it; blank while it runs. */
function exitCell(s: Service): string {
  if (s.exit_code !== null) return String(s.exit_code);
  return s.signal ? `SIG${s.signal}` : "";
}

/** `127.0.0.1:8080->80`, as `docker ps` shows a published port. */
function portCell(port: Service["published_ports"][number]): string {
  return port.host_port === undefined
    ? `${port.guest_port}`
    : `127.0.0.1:${port.host_port}->${port.guest_port}`;
}
