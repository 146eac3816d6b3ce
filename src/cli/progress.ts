import { phaseLine, type ProgressEvent, type ProgressSink } from "../util/progress.js";
import { escapeLine } from "./escape.js";

/**
 * Renders progress on stderr: a phase line (`[pull] phase=bootstrap environment=debian:12`)
 * whenever the phase changes; on a TTY also a live line with percent and the latest detail.
 * Fields and details can quote a guest or a build log, so both are escaped.
 */
export function cliProgress(stream: NodeJS.WriteStream = process.stderr): ProgressSink {
  const live = stream.isTTY === true;
  let lastPhase = "";
  let liveShown = false;
  let lastDraw = 0;
  const clearLive = () => {
    if (liveShown) stream.write("\r\x1b[2K");
    liveShown = false;
  };
  return (event: ProgressEvent) => {
    const key = `${event.scope}/${event.phase}`;
    if (key !== lastPhase) {
      lastPhase = key;
      clearLive();
      stream.write(`${escapeLine(phaseLine(event))}\n`);
    }
    if (!live || (event.fraction === undefined && !event.detail)) return;
    const now = Date.now();
    if (now - lastDraw < 100) return;
    lastDraw = now;
    const percent = event.fraction === undefined ? "" : `${Math.floor(event.fraction * 100)}% `;
    const width = Math.max(20, (stream.columns ?? 80) - 1);
    stream.write(`\r\x1b[2K${`  ${percent}${escapeLine(event.detail ?? "")}`.slice(0, width)}`);
    liveShown = true;
  };
}
