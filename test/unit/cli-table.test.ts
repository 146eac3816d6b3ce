import { describe, expect, it } from "vitest";
import { serviceTable, snapshotTable, workspaceTable } from "../../src/cli/list-tables.js";
import { formatAge, formatBytes, renderTable } from "../../src/cli/table.js";

describe("renderTable", () => {
  const rows = [
    { name: "web", pid: 7, note: "short" },
    { name: "database-primary", pid: 12345, note: "" },
  ];
  const table = renderTable(rows, [
    { header: "name", cell: (r) => r.name },
    { header: "pid", cell: (r) => String(r.pid), align: "right" },
    { header: "note", cell: (r) => r.note },
  ]);
  const lines = table.split("\n");

  it("puts upper-case headers over aligned columns, numbers right-aligned, empty cells '-'", () => {
    expect(lines).toEqual([
      "NAME                PID  NOTE",
      "web                   7  short",
      "database-primary  12345  -",
    ]);
  });

  it("starts each left-aligned column at its header on every line, and ends no line in blanks", () => {
    const noteAt = lines[0]!.indexOf("NOTE");
    expect(lines.slice(1).map((line) => line.slice(noteAt))).toEqual(["short", "-"]);
    for (const line of lines) expect(line).toBe(line.trimEnd());
  });

  it("keeps every row on one line with terminal controls escaped", () => {
    const hostile = renderTable(
      [{ name: "a\nb\x1b[31mred\u202e" }],
      [{ header: "name", cell: (r: { name: string }) => r.name }],
    );
    expect(hostile.split("\n")).toEqual(["NAME", "a\\nb\\x1b[31mred\\u202e"]);
  });

  it("prints only the headers for no rows", () => {
    expect(renderTable([], [{ header: "id", cell: () => "x" }])).toBe("ID");
  });
});

describe("formatting of sizes and ages", () => {
  it("shows bytes in binary units a person reads", () => {
    expect(
      [0, 512, 1536, 10 * 1024, 5 * 2 ** 20 + 2 ** 19, 2 ** 31, null].map(formatBytes),
    ).toEqual(["0 B", "512 B", "1.5 KiB", "10 KiB", "5.5 MiB", "2.0 GiB", "-"]);
  });

  it("shows coarse ages relative to now", () => {
    const now = new Date("2026-11-30T12:00:00Z");
    const ago = (seconds: number) =>
      formatAge(new Date(now.getTime() - seconds * 1000).toISOString(), now);
    expect([1, 40, 600, 7200, 3 * 86400].map(ago)).toEqual([
      "just now",
      "40s ago",
      "10m ago",
      "2h ago",
      "3d ago",
    ]);
    expect(formatAge("not a time", now)).toBe("-");
  });
});

describe("list tables", () => {
  const now = new Date("2026-11-30T12:00:00Z");
  const workspace = {
    workspace_id: "ws_0123456789ab",
    name: "fix-bug",
    labels: { team: "core", ticket: "42" },
    environment: "debian:12",
    state: "started" as const,
    vcpu_count: 1,
    mem_mib: 1024,
    ttl_seconds: 600,
    created_at: "2026-11-30T11:00:00Z",
    expires_at: "2026-11-30T12:10:00Z",
    last_activity_at: "2026-11-30T11:55:00Z",
    network_policy: "off" as const,
    allowed_domains: [],
    network_status: null,
    workspace_seed: { mode: "empty" as const, seed_path: null },
    secrets: [],
    command_count: 3,
    last_command: null,
    reset_count: 0,
    last_reset_at: null,
    service_count: 0,
    running_service_count: 0,
    execution_mode: "guest" as const,
    acceleration: "tcg" as const,
    error: null,
  };

  it("shows a workspace's id, name, state, environment, network, activity and labels", () => {
    const unnamed = { ...workspace, workspace_id: "ws_ffffffffffff", name: null, labels: {} };
    expect(workspaceTable([workspace, unnamed], now).split("\n")).toEqual([
      "ID               NAME     STATE    ENVIRONMENT  NETWORK  LAST ACTIVE  LABELS",
      "ws_0123456789ab  fix-bug  started  debian:12    off      5m ago       team=core,ticket=42",
      "ws_ffffffffffff  -        started  debian:12    off      5m ago       -",
    ]);
  });

  it("shows snapshots with sizes and ages", () => {
    const table = snapshotTable(
      [
        {
          snapshot_name: "baseline",
          kind: "baseline",
          created_at: "2026-11-30T11:00:00Z",
          size_bytes: 2048,
        },
        {
          snapshot_name: "before-upgrade",
          kind: "named",
          created_at: "2026-11-30T11:59:30Z",
          size_bytes: 3 * 2 ** 20,
        },
      ],
      now,
    );
    expect(table.split("\n")).toEqual([
      "NAME            KIND         SIZE  CREATED",
      "baseline        baseline  2.0 KiB  1h ago",
      "before-upgrade  named     3.0 MiB  30s ago",
    ]);
  });

  it("shows how each service ended and where its ports are published", () => {
    const base = {
      workspace_id: "ws_0123456789ab",
      cwd: "/workspace",
      started_at: "2026-11-30T11:00:00Z",
      ready_at: null,
      ended_at: null,
      readiness: null,
      stop_reason: null,
    };
    const table = serviceTable([
      {
        ...base,
        service_name: "web",
        state: "running",
        command: ["python3", "-m", "http.server", "8000"],
        exit_code: null,
        signal: null,
        pid: 311,
        published_ports: [{ guest_port: 8000, host_port: 41234, host_address: "127.0.0.1" }],
      },
      {
        ...base,
        service_name: "worker",
        state: "stopped",
        command: ["sleep", "300"],
        exit_code: null,
        signal: "TERM",
        pid: null,
        published_ports: [],
      },
      {
        ...base,
        service_name: "job",
        state: "exited",
        command: ["true"],
        exit_code: 0,
        signal: null,
        pid: null,
        published_ports: [],
      },
    ]);
    expect(table.split("\n")).toEqual([
      "NAME    STATE    PID  EXIT     PORTS                  COMMAND",
      "web     running  311  -        127.0.0.1:41234->8000  python3 -m http.server 8000",
      "worker  stopped    -  SIGTERM  -                      sleep 300",
      "job     exited     -  0        -                      true",
    ]);
  });
});
