import type { ServerNotification } from "@modelcontextprotocol/sdk/types.js";
import { phaseLine, silentProgress, type ProgressSink } from "../util/progress.js";

/** What the tool handler gets from the SDK that progress needs. */
export interface ProgressRequest {
  _meta?: { progressToken?: string | number };
  sendNotification: (notification: ServerNotification) => Promise<void>;
}

/**
 * Forwards the facade's progress events as `notifications/progress` when the client asked
 * for them (a `progressToken` in `_meta`). `progress` counts the notifications sent, since
 * the spec needs it to increase and most work has no known total; the phase line is the
 * message. Phase changes always go out; updates inside one phase (a kernel build's log
 * lines) at most every `intervalMs`, so a long build does not flood the client.
 */
export function progressForRequest(request: ProgressRequest, intervalMs = 1000): ProgressSink {
  const progressToken = request._meta?.progressToken;
  if (progressToken === undefined) return silentProgress;
  let progress = 0;
  let lastPhase = "";
  let lastSent = 0;
  return (event) => {
    const message = phaseLine(event);
    const now = Date.now();
    if (message === lastPhase && now - lastSent < intervalMs) return;
    lastPhase = message;
    lastSent = now;
    progress += 1;
    const percent = event.fraction === undefined ? "" : ` ${Math.floor(event.fraction * 100)}%`;
    // A client that went away must not fail the work in progress.
    request
      .sendNotification({
        method: "notifications/progress",
        params: { progressToken, progress, message: `${message}${percent}` },
      })
      .catch(() => {});
  };
}
