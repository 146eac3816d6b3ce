/**
 * Progress of long work (kernel build, environment build, boot). The core reports events;
 * only surfaces render them (the CLI as phase lines or a live TTY line, MCP as
 * progress notifications), so the core itself never prints.
 */
export interface ProgressEvent {
  /** What is running: `pull`, `kernel`, `agent`, `run`... */
  scope: string;
  /** A stable phase name, e.g. `build-rootfs` or `boot`. */
  phase: string;
  /** Extra key=value facts for the phase line. */
  fields?: Record<string, string | number>;
  /** 0..1 when the work knows how far along it is. */
  fraction?: number;
  /** A short live detail (the last line of a build log), shown on a TTY only. */
  detail?: string;
}

export type ProgressSink = (event: ProgressEvent) => void;

export const silentProgress: ProgressSink = () => {};

/** `[run] phase=boot vm_id=vm_... environment=debian:12`: how every surface names a phase. */
export function phaseLine(event: ProgressEvent): string {
  const fields = Object.entries(event.fields ?? {}).map(([k, v]) => `${k}=${v}`);
  return [`[${event.scope}]`, `phase=${event.phase}`, ...fields].join(" ");
}
