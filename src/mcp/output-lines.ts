import { StringDecoder } from "node:string_decoder";

/** Lines one progress notification carries at most: the newest ones win. */
export const MAX_PROGRESS_LINES = 20;
/** Characters of one line a notification carries at most (a minified bundle is one line). */
export const MAX_PROGRESS_LINE_CHARS = 400;

/** Characters of an unfinished line kept before it counts as a line of its own. */
const HOARD_CHARS = MAX_PROGRESS_LINE_CHARS * 4;

export type OutputStream = "stdout" | "stderr";

interface Line {
  stream: OutputStream;
  text: string;
}

/**
 * The output of a running command as the newest lines since the last `take()`, for
 * progress notifications: bounded in lines and characters however much the command
 * prints, so a flood costs the client one small message a second. Streams are decoded
 * separately (a UTF-8 character split across chunks stays whole) and their lines kept in
 * arrival order; stderr lines are marked.
 */
export class OutputLines {
  private readonly decoders = {
    stdout: new StringDecoder("utf8"),
    stderr: new StringDecoder("utf8"),
  };
  /** Text after the last newline of each stream: a line still being written. */
  private readonly partial = { stdout: "", stderr: "" };
  /** The partial line as last taken, so an unchanged one is not sent twice. */
  private readonly partialTaken = { stdout: "", stderr: "" };
  private pending: Line[] = [];
  private dropped = 0;

  push(stream: OutputStream, chunk: Buffer): void {
    const text = this.partial[stream] + this.decoders[stream].write(chunk);
    const parts = text.split("\n");
    const rest = parts.pop() ?? "";
    // A line with no end in sight (a progress bar redrawn with \r) is cut, not hoarded.
    // Every line is cut at the same lengths, so what is shown does not depend on where
    // the chunks happened to end.
    const lines = parts.flatMap(cutLine);
    const pieces = cutLine(rest);
    const partial = pieces.pop() ?? "";
    lines.push(...pieces);
    for (const line of lines) this.add({ stream, text: line });
    if (lines.length) this.partialTaken[stream] = "";
    this.partial[stream] = partial;
  }

  /**
   * The lines that arrived since the last call, plus any line still being written that
   * changed, as one message; undefined when there is nothing new.
   */
  take(): string | undefined {
    const lines = [...this.pending];
    for (const stream of ["stdout", "stderr"] as const) {
      const partial = this.partial[stream];
      if (partial && partial !== this.partialTaken[stream]) {
        lines.push({ stream, text: partial });
        this.partialTaken[stream] = partial;
      }
    }
    const dropped = this.dropped + Math.max(0, lines.length - MAX_PROGRESS_LINES);
    this.pending = [];
    this.dropped = 0;
    if (!lines.length) return undefined;
    const shown = lines.slice(-MAX_PROGRESS_LINES).map(renderLine);
    if (dropped) shown.unshift(`[${dropped} earlier line${dropped === 1 ? "" : "s"} not shown]`);
    return shown.join("\n");
  }

  private add(line: Line): void {
    this.pending.push(line);
    // Only the newest lines can be shown: older ones are counted, not kept.
    if (this.pending.length > MAX_PROGRESS_LINES) {
      this.pending.shift();
      this.dropped += 1;
    }
  }
}

/** `text` in pieces of `HOARD_CHARS` (one piece, maybe empty, when it is not longer). */
function cutLine(text: string): string[] {
  const pieces: string[] = [];
  for (let at = 0; at === 0 || at < text.length; at += HOARD_CHARS) {
    pieces.push(text.slice(at, at + HOARD_CHARS));
  }
  return pieces;
}

// eslint-disable-next-line no-control-regex
const ANSI_SEQUENCE = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?/g;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;

/**
 * One line as a terminal would end up showing it: the text after its last carriage
 * return (progress bars redraw that way), colour and cursor sequences and other controls
 * removed, cut at `MAX_PROGRESS_LINE_CHARS`. A client shows the message as plain text.
 */
function renderLine(line: Line): string {
  const shown = (line.text.split("\r").findLast((part) => part !== "") ?? "")
    .replace(ANSI_SEQUENCE, "")
    .replace(CONTROL, "");
  const cut =
    shown.length > MAX_PROGRESS_LINE_CHARS ? `${shown.slice(0, MAX_PROGRESS_LINE_CHARS)}…` : shown;
  return line.stream === "stderr" ? `[stderr] ${cut}` : cut;
}
