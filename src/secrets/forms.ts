/**
 * The byte strings that give a secret away in output: what the redactor looks for.
 *
 * - The value itself, and the value without trailing whitespace (`$(cat file)` and most
 *   shells drop the newline a secret file ends with).
 * - Each line of a multi-line value of at least {@link MIN_LINE_CHARS} characters (a key
 *   printed in part, or through a PTY that turns `\n` into `\r\n`).
 * - The base64 of each of those at the three alignments a value can have inside a larger
 *   base64 stream (`printenv | base64`): only the characters that depend on the value's
 *   bits alone, so they match wherever the value sits. Those are matched with line breaks
 *   ignored, because base64(1) wraps its output every 76 characters.
 */

/** Lines shorter than this are not looked for on their own (`}` would redact every brace). */
export const MIN_LINE_CHARS = 8;
/** Shorter base64 fragments would match by chance in any base64 text. */
export const MIN_BASE64_CHARS = 4;

export interface Needle {
  name: string;
  bytes: Buffer;
  /** Matched with `\r` and `\n` of the output skipped (base64 forms). */
  ignoreLineBreaks: boolean;
}

export interface SecretValue {
  name: string;
  value: string;
}

/** Every needle of every secret, duplicates dropped, empty forms left out. */
export function needlesOf(secrets: readonly SecretValue[]): Needle[] {
  const seen = new Set<string>();
  const needles: Needle[] = [];
  const add = (name: string, bytes: Buffer, ignoreLineBreaks: boolean) => {
    const key = `${ignoreLineBreaks ? "b" : "p"}:${bytes.toString("hex")}`;
    if (bytes.length === 0 || seen.has(key)) return;
    seen.add(key);
    needles.push({ name, bytes, ignoreLineBreaks });
  };
  for (const { name, value } of secrets) {
    for (const text of plainForms(value)) {
      const bytes = Buffer.from(text, "utf8");
      add(name, bytes, false);
      for (const form of base64Forms(bytes)) add(name, form, true);
    }
  }
  return needles;
}

function plainForms(value: string): string[] {
  const forms = [value, value.trimEnd()];
  if (value.includes("\n")) {
    for (const line of value.split(/\r?\n/)) {
      if (line.trim().length >= MIN_LINE_CHARS) forms.push(line, line.trim());
    }
  }
  return forms.filter((form) => form.length > 0);
}

/**
 * The base64 characters fully determined by `bytes` when they start `offset` bytes (0, 1
 * or 2) into a 3-byte group: character i covers bits [6i, 6i+6) of the encoded stream, so
 * it depends only on the value when 6i >= 8*offset and 6i+6 <= 8*(offset+length).
 */
export function base64Forms(bytes: Buffer): Buffer[] {
  const forms: Buffer[] = [];
  for (const offset of [0, 1, 2]) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString("base64");
    const first = Math.ceil((8 * offset) / 6);
    const end = Math.floor((8 * (offset + bytes.length)) / 6);
    if (end - first >= MIN_BASE64_CHARS) forms.push(Buffer.from(encoded.slice(first, end)));
  }
  return forms;
}
