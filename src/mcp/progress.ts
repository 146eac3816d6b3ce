import type { ServerNotification } from "@modelcontextprotocol/sdk/types.js";
import { phaseLine, silentProgress, type ProgressSink } from "../util/progress.js";
import { OutputLines } from "./output-lines.js";

/** What the tool handler gets from the SDK that progress needs. */
export interface ProgressRequest {
  _meta?: { progressToken?: string | number };
  sendNotification: (notification: ServerNotification) => Promise<void>;
}

/** One tool call's progress: the facade's phase events and a running command's output. */
export interface RequestProgress {
  /** For `new Pyro({ progress })`. */
  readonly phases: ProgressSink;
  /** For the facade's `onStdout` / `onStderr` (no-ops when the client asked for none). */
  readonly output: { onStdout: (chunk: Buffer) => void; onStderr: (chunk: Buffer) => void };
  /** The call is answered: nothing more is sent (a pending output update is dropped). */
  close(): void;
}

const ignore = () => {};
const NO_PROGRESS: RequestProgress = {
  phases: silentProgress,
  output: { onStdout: ignore, onStderr: ignore },
  close: ignore,
};

/**
 * Forwards a tool call's progress as `notifications/progress` when the client asked for
 * it (a `progressToken` in `_meta`). `progress` counts the notifications sent, since the
 * spec needs it to increase and most work has no known total.
 *
 * Phase events: the phase line is the message; phase changes always go out, updates
 * inside one phase (a kernel build's log lines) at most every `intervalMs`.
 * Command output: the newest lines (`OutputLines`: bounded, controls removed) at most
 * every `intervalMs`, the first as soon as it arrives, and a quiet command's last lines
 * within `intervalMs` of being printed. The facade hands the output over already redacted,
 * as it does the result.
 */
export function progressForRequest(request: ProgressRequest, intervalMs = 1000): RequestProgress {
  const progressToken = request._meta?.progressToken;
  if (progressToken === undefined) return NO_PROGRESS;
  let progress = 0;
  let closed = false;
  const send = (message: string) => {
    if (closed) return;
    progress += 1;
    // A client that went away must not fail the work in progress.
    request
      .sendNotification({
        method: "notifications/progress",
        params: { progressToken, progress, message },
      })
      .catch(() => {});
  };
  const output = outputUpdates(send, intervalMs);
  return {
    phases: phaseUpdates(send, intervalMs),
    output: output.handlers,
    close: () => {
      closed = true;
      output.stop();
    },
  };
}

function phaseUpdates(send: (message: string) => void, intervalMs: number): ProgressSink {
  let lastPhase = "";
  let lastSent = 0;
  return (event) => {
    const message = phaseLine(event);
    const now = Date.now();
    if (message === lastPhase && now - lastSent < intervalMs) return;
    lastPhase = message;
    lastSent = now;
    const percent = event.fraction === undefined ? "" : ` ${Math.floor(event.fraction * 100)}%`;
    send(`${message}${percent}`);
  };
}

/** Output collects in `OutputLines`; one timer per quiet spell sends what collected. */
function outputUpdates(send: (message: string) => void, intervalMs: number) {
  const lines = new OutputLines();
  let lastSent = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    const message = lines.take();
    if (message === undefined) return;
    lastSent = Date.now();
    send(message);
  };
  const schedule = () => {
    if (timer) return;
    const wait = Math.max(0, lastSent + intervalMs - Date.now());
    // unref: a pending update must never keep a finished process alive.
    timer = setTimeout(flush, wait).unref();
  };
  return {
    handlers: {
      onStdout: (chunk: Buffer) => (lines.push("stdout", chunk), schedule()),
      onStderr: (chunk: Buffer) => (lines.push("stderr", chunk), schedule()),
    },
    stop: () => clearTimeout(timer),
  };
}
