/**
 * Guest text made safe for a terminal. A guest is untrusted and picks its own file names,
 * error messages and output: printed raw, an ESC sequence rewrites the user's terminal
 * (title, colours, cursor, clipboard through OSC 52) or fakes lines of pyro's own output.
 * Every human-mode line the CLI composes goes through these; `--json` is escaped by JSON.
 *
 * Escaped: C0 controls and DEL (`\x1b`, with `\n` `\r` `\t` by name), the C1 range
 * U+0080-U+009F (some terminals act on U+009B as CSI) and the Unicode bidi overrides
 * and isolates, which reorder what a line appears to say. Backslashes stay as they are:
 * the goal is a harmless terminal, not a reversible encoding.
 */

// A separate expression per mode: `escapeText` keeps the line structure of a block.
// eslint-disable-next-line no-control-regex
const EVERY_CONTROL = /[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex
const CONTROL_BUT_LAYOUT = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escapeOne(char: string): string {
  const named = NAMED[char];
  if (named) return named;
  const code = char.charCodeAt(0);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
}

/** One field on one line (a file name, a label): every control character escaped. */
export function escapeLine(text: string): string {
  return text.replace(EVERY_CONTROL, escapeOne);
}

/** A block of text (a message, a log tail): newlines and tabs kept, the rest escaped. */
export function escapeText(text: string): string {
  return text.replace(CONTROL_BUT_LAYOUT, escapeOne);
}

/**
 * Document content the user asked for (a file's text, a diff): escaped for a terminal,
 * byte for byte when redirected, so `> file` and pipes still get exactly what the guest had.
 */
export function forTerminal(text: string, stream: { isTTY?: boolean }): string {
  return stream.isTTY === true ? escapeText(text) : text;
}
