/**
 * Terminal output as text a model can read: escape sequences (colours, cursor moves,
 * window titles) removed, CR/LF and backspaces applied the way a terminal shows them on
 * one line, and UTF-8 cut only at character boundaries. Pure functions, no processes.
 */

const ESC = "\x1b";
const BEL = "\x07";
/** The 8-bit string terminator; 7-bit is ESC \. */
const ST8 = "\x9c";

/** Where one escape sequence starting at `start` (an ESC) ends, or -1 when it does not yet. */
function escapeEnd(text: string, start: number): number {
  const kind = text[start + 1];
  if (kind === undefined) return -1;
  if (kind === "[") return csiEnd(text, start + 2);
  // OSC (titles, hyperlinks), DCS, SOS, PM, APC: a string up to ST (or BEL for OSC).
  if ("]PX^_".includes(kind)) return stringEnd(text, start + 2);
  const code = kind.charCodeAt(0);
  // nF sequences (charset designations such as ESC ( B): intermediates, then a final.
  if (code >= 0x20 && code <= 0x2f) {
    let i = start + 2;
    while (i < text.length && text.charCodeAt(i) >= 0x20 && text.charCodeAt(i) <= 0x2f) i++;
    if (i >= text.length) return -1;
    const final = text.charCodeAt(i);
    return final >= 0x30 && final <= 0x7e ? i + 1 : i;
  }
  // Two-character sequences (ESC 7, ESC =, ESC M...). Before a control character the ESC
  // alone is dropped and the character is handled as itself.
  return code >= 0x30 && code <= 0x7e ? start + 2 : start + 1;
}

/** CSI: parameter bytes 0x30-0x3F, intermediates 0x20-0x2F, one final 0x40-0x7E. */
function csiEnd(text: string, from: number): number {
  let i = from;
  while (i < text.length && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x3f) i++;
  while (i < text.length && text.charCodeAt(i) >= 0x20 && text.charCodeAt(i) <= 0x2f) i++;
  if (i >= text.length) return -1;
  const final = text.charCodeAt(i);
  // A malformed sequence ends where it goes wrong; that character is text again.
  return final >= 0x40 && final <= 0x7e ? i + 1 : i;
}

function stringEnd(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === BEL || c === ST8) return i + 1;
    if (c === ESC) return text[i + 1] === "\\" ? i + 2 : text[i + 1] === undefined ? -1 : i;
  }
  return -1;
}

/**
 * Length in UTF-16 units of an escape sequence that starts near the end of `text` and is
 * not finished yet (0 when there is none), so a reader can leave it for the next read
 * instead of showing half of it as text. Only the last `window` units are looked at.
 */
export function unfinishedEscapeLength(text: string, window = 256): number {
  const from = Math.max(0, text.length - window);
  let i = text.indexOf(ESC, from);
  while (i !== -1) {
    const end = escapeEnd(text, i);
    if (end === -1) return text.length - i;
    i = text.indexOf(ESC, Math.max(end, i + 1));
  }
  return 0;
}

/**
 * Length in UTF-16 units of the escape sequence at the start of `text` (which starts with
 * ESC), or -1 when it is not finished within `text`.
 */
export function leadingEscapeLength(text: string): number {
  return escapeEnd(text, 0);
}

/** One screen line being drawn: characters and the cursor's column. */
class Line {
  cells: string[] = [];
  column = 0;

  put(char: string): void {
    while (this.cells.length < this.column) this.cells.push(" ");
    this.cells[this.column] = char;
    this.column += 1;
  }

  /** CSI n K: 0 erases to the end of the line, 1 to its start, 2 all of it. */
  erase(mode: number): void {
    if (mode === 0 || mode === 2) this.cells.length = Math.min(this.cells.length, this.column);
    if (mode === 1 || mode === 2) {
      for (let i = 0; i < Math.min(this.column + 1, this.cells.length); i++) this.cells[i] = " ";
    }
  }

  text(): string {
    return this.cells.join("");
  }
}

/** The few CSI sequences that change what one line shows; the rest only style or move. */
function applyCsi(line: Line, sequence: string): void {
  const final = sequence[sequence.length - 1];
  const params = sequence.slice(2, -1);
  if (!/^\d*$/.test(params)) return;
  const n = params === "" ? undefined : Math.min(Number(params), 1000);
  if (final === "K") line.erase(n ?? 0);
  else if (final === "C") line.column += Math.max(n ?? 1, 1);
  else if (final === "D") line.column = Math.max(line.column - Math.max(n ?? 1, 1), 0);
  else if (final === "G") line.column = Math.max((n ?? 1) - 1, 0);
}

/** Control characters other than \n and \t, and C1 controls, never reach the text. */
function isControl(code: number): boolean {
  return (
    (code < 0x20 && code !== 0x09 && code !== 0x0a) ||
    code === 0x7f ||
    (code >= 0x80 && code <= 0x9f)
  );
}

/**
 * Plain text from terminal output: escape sequences removed (an unfinished one at the
 * end too), `\r\n` and `\n` end lines, a lone `\r` returns to the line's start so what
 * follows overwrites it (progress bars), backspace moves left (shells erase with
 * "\b \b"), other control characters are dropped. Never throws; the result holds no
 * ESC or control character but `\n` and `\t`, so applying it again changes nothing.
 */
export function plainText(raw: string): string {
  const lines: string[] = [];
  let line = new Line();
  let i = 0;
  while (i < raw.length) {
    // By code point, so a backspace never splits a surrogate pair.
    const code = raw.codePointAt(i)!;
    const char = String.fromCodePoint(code);
    if (char === ESC) {
      const end = escapeEnd(raw, i);
      if (end === -1) break;
      if (raw[i + 1] === "[") applyCsi(line, raw.slice(i, end));
      i = end;
      continue;
    }
    i += char.length;
    if (char === "\n") {
      lines.push(line.text());
      line = new Line();
    } else if (char === "\r") line.column = 0;
    else if (char === "\b") line.column = Math.max(line.column - 1, 0);
    else if (!isControl(code)) line.put(char);
  }
  lines.push(line.text());
  return lines.join("\n");
}

/**
 * The first at most `maxChars` characters of UTF-8 `bytes`, cut at a character boundary,
 * and how many bytes they took. A character split by the end of `bytes` is left for the
 * next read, unless `atEnd` says no more bytes will ever follow. Stray continuation bytes
 * at the start (the ring dropped the start of their character) are skipped.
 */
export function cutUtf8(
  bytes: Buffer,
  maxChars: number,
  options: { atEnd?: boolean } = {},
): { text: string; bytes: number } {
  let start = 0;
  while (start < Math.min(bytes.length, 3) && (bytes[start]! & 0xc0) === 0x80) start++;
  let offset = start;
  let chars = 0;
  while (offset < bytes.length && chars < maxChars) {
    const length = sequenceLength(bytes[offset]!);
    if (offset + length > bytes.length && !options.atEnd && completable(bytes, offset)) break;
    offset += validSequence(bytes, offset, length) ? length : 1;
    chars += 1;
  }
  return { text: bytes.subarray(start, offset).toString("utf8"), bytes: offset };
}

/** The length a lead byte announces (1 for ASCII and for bytes that cannot lead). */
function sequenceLength(lead: number): number {
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  return 1;
}

/**
 * A well-formed sequence (Unicode table 3-7: no overlong forms, surrogates or values past
 * U+10FFFF), so it decodes to exactly one character and the count of characters holds.
 */
function validSequence(bytes: Buffer, offset: number, length: number): boolean {
  if (length === 1 || offset + length > bytes.length) return length === 1;
  const lead = bytes[offset]!;
  const second = bytes[offset + 1]!;
  const [low, high] =
    lead === 0xe0
      ? [0xa0, 0xbf]
      : lead === 0xed
        ? [0x80, 0x9f]
        : lead === 0xf0
          ? [0x90, 0xbf]
          : lead === 0xf4
            ? [0x80, 0x8f]
            : [0x80, 0xbf];
  if (second < low || second > high) return false;
  for (let i = 2; i < length; i++) if ((bytes[offset + i]! & 0xc0) !== 0x80) return false;
  return true;
}

/** Every byte after the lead so far is a continuation byte: more may complete it. */
function completable(bytes: Buffer, offset: number): boolean {
  for (let i = offset + 1; i < bytes.length; i++) if ((bytes[i]! & 0xc0) !== 0x80) return false;
  return true;
}
