/**
 * File names in unified-diff headers, written and read the way git does, so that
 * `patch -p1`, `git apply` and workspace_patch_apply agree on odd names: a name with a
 * quote, a backslash, a control character or edge spaces is C-quoted ("a/tab\there").
 */

/** Whether git would quote a name (non-ASCII aside, which we leave as UTF-8: GNU patch takes it). */
function needsQuoting(name: string): boolean {
  if (name.startsWith(" ") || name.endsWith(" ")) return true;
  return [...name].some((char) => char === '"' || char === "\\" || char < " " || char === "\x7f");
}

const ESCAPES: Record<string, string> = {
  "\x07": "\\a",
  "\b": "\\b",
  "\t": "\\t",
  "\n": "\\n",
  "\v": "\\v",
  "\f": "\\f",
  "\r": "\\r",
  '"': '\\"',
  "\\": "\\\\",
};

const UNESCAPES: Record<string, number> = {
  a: 7,
  b: 8,
  t: 9,
  n: 10,
  v: 11,
  f: 12,
  r: 13,
  '"': 34,
  "\\": 92,
};

/** A header name as git writes it: raw when safe, otherwise C-quoted. */
export function quoteGitPath(name: string): string {
  if (!needsQuoting(name)) return name;
  let quoted = '"';
  for (const char of name) {
    const code = char.charCodeAt(0);
    quoted +=
      ESCAPES[char] ??
      (code < 0x20 || code === 0x7f ? `\\${code.toString(8).padStart(3, "0")}` : char);
  }
  return `${quoted}"`;
}

/**
 * Reads one header name from the start of `text`: a C-quoted name, or a raw one that ends
 * at a tab (where `diff` puts a timestamp and git a lone tab) or at the end of the line.
 * Returns the name and the text after it, or `undefined` for a broken quoted name.
 */
export function readGitPath(text: string): { name: string; rest: string } | undefined {
  if (!text.startsWith('"')) {
    const tab = text.indexOf("\t");
    const raw = tab === -1 ? text : text.slice(0, tab);
    return { name: raw.trimEnd(), rest: tab === -1 ? "" : text.slice(tab) };
  }
  const bytes: number[] = [];
  let i = 1;
  while (i < text.length) {
    const char = String.fromCodePoint(text.codePointAt(i) as number);
    i += char.length;
    if (char === '"') {
      return { name: Buffer.from(bytes).toString("utf8"), rest: text.slice(i) };
    }
    if (char !== "\\") {
      bytes.push(...Buffer.from(char, "utf8"));
      continue;
    }
    const octal = /^[0-7]{3}/.exec(text.slice(i, i + 3));
    const escaped = octal ? parseInt(octal[0], 8) : UNESCAPES[text[i] ?? ""];
    if (escaped === undefined) return undefined;
    bytes.push(escaped);
    i += octal ? 3 : 1;
  }
  return undefined;
}
