import { afterEach, describe, expect, it, vi } from "vitest";
import { print, printNote, printRecord } from "../../src/cli/action.js";
import { escapeLine, escapeText, forTerminal } from "../../src/cli/escape.js";
import { reportError } from "../../src/cli/output.js";
import { cliProgress } from "../../src/cli/progress.js";
import { PyroError } from "../../src/contract/errors.js";

/** What a hostile guest puts in a name: a title change, a screen clear, a C1 CSI, a bidi override. */
const HOSTILE = "a\x1b]0;pwned\x07b\x1b[2Jc\u009b31md\u202ee\rf\ng\th\x7f";

/** Nothing that a terminal acts on: no C0 (but the layout ones allowed), DEL, C1 or bidi. */
function assertInert(text: string, allowLayout: boolean) {
  for (const char of text) {
    const code = char.codePointAt(0)!;
    const layout = allowLayout && (char === "\n" || char === "\t");
    if (!layout) {
      expect(code < 0x20 || (code >= 0x7f && code <= 0x9f), JSON.stringify(text)).toBe(false);
      expect([0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e]).not.toContain(code);
      expect(code >= 0x2066 && code <= 0x2069).toBe(false);
    }
  }
}

function captured(stream: "stdout" | "stderr") {
  const chunks: string[] = [];
  vi.spyOn(process[stream], "write").mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  return () => chunks.join("");
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("escaping guest text for a terminal", () => {
  it("escapes every control character of a one-line field, naming the common ones", () => {
    const line = escapeLine(HOSTILE);
    assertInert(line, false);
    expect(line).toBe("a\\x1b]0;pwned\\x07b\\x1b[2Jc\\x9b31md\\u202ee\\rf\\ng\\th\\x7f");
  });

  it("keeps newlines and tabs of a block and escapes the rest", () => {
    const block = escapeText(HOSTILE);
    assertInert(block, true);
    expect(block).toBe("a\\x1b]0;pwned\\x07b\\x1b[2Jc\\x9b31md\\u202ee\\rf\ng\th\\x7f");
  });

  it("leaves ordinary text, including non-Latin letters and emoji, as it is", () => {
    const plain = "src/main.py: ünïcödé 日本語 🙂 \\x1b stays literal";
    expect(escapeLine(plain)).toBe(plain);
    expect(escapeText(plain)).toBe(plain);
  });

  it("escapes document content for a terminal only, so redirects stay byte-exact", () => {
    expect(forTerminal(HOSTILE, { isTTY: true })).toBe(escapeText(HOSTILE));
    expect(forTerminal(HOSTILE, { isTTY: false })).toBe(HOSTILE);
    expect(forTerminal(HOSTILE, {})).toBe(HOSTILE);
  });
});

describe("the CLI's human-mode printers", () => {
  it("print an error message from the guest escaped, keeping its lines", () => {
    const stderr = captured("stderr");
    const error = new PyroError("guest_error", `cannot read ${HOSTILE}\nsecond line`);
    expect(reportError(error, { json: false })).toBe(1);
    const out = stderr();
    assertInert(out, true);
    expect(out).toBe(
      `pyro: error [guest_error]: cannot read ${escapeText(HOSTILE)}\nsecond line\n`,
    );
  });

  it("print records one field per line, a field's own newline escaped", () => {
    const stdout = captured("stdout");
    printRecord({ name: HOSTILE, labels: { team: "x\x1b[31m" }, note: null });
    const lines = stdout().split("\n");
    expect(lines).toEqual([
      `name: ${escapeLine(HOSTILE)}`,
      `labels: {"team":"x\\u001b[31m"}`,
      "note: -",
      "",
    ]);
  });

  it("print and printNote never write a raw control character", () => {
    const stdout = captured("stdout");
    const stderr = captured("stderr");
    print(HOSTILE);
    printNote(HOSTILE);
    assertInert(stdout(), true);
    assertInert(stderr(), true);
    expect(stdout()).toBe(`${escapeText(HOSTILE)}\n`);
  });

  it("render progress phase lines and live details escaped", () => {
    const written: string[] = [];
    const stream = {
      isTTY: true,
      columns: 200,
      write: (chunk: string) => written.push(chunk),
    } as unknown as NodeJS.WriteStream;
    const progress = cliProgress(stream);
    progress({ scope: "pull", phase: "bootstrap", fields: { environment: HOSTILE } });
    progress({ scope: "pull", phase: "bootstrap", detail: HOSTILE });
    const [phase, live] = written;
    expect(phase).toBe(`[pull] phase=bootstrap environment=${escapeLine(HOSTILE)}\n`);
    // The live line starts with pyro's own clear-line sequence; what follows is inert.
    expect(live!.startsWith("\r\x1b[2K")).toBe(true);
    assertInert(live!.slice("\r\x1b[2K".length), false);
  });
});
