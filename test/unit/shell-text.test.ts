import { describe, expect, it } from "vitest";
import { cutUtf8, plainText, unfinishedEscapeLength } from "../../src/workspace/terminal-text.js";

describe("plainText", () => {
  it("removes colours, cursor keys, charset switches and window titles", () => {
    const raw =
      "\x1b[1;32mok\x1b[0m \x1b(Bdone\x1b]0;root@box: /workspace\x07\x1b[?2004h$ \x1b=\x1b>";
    expect(plainText(raw)).toBe("ok done$ ");
  });

  it("ends an OSC at ST as well as at BEL, and drops DCS and APC strings", () => {
    expect(plainText("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b")).toBe("alinkb");
    expect(plainText("a\x1bPq#0;2;0;0;0\x1b\\b\x1b_hidden\x1b\\c")).toBe("abc");
  });

  it("normalises CRLF to LF and lets a lone CR overwrite the line, like a progress bar", () => {
    expect(plainText("one\r\ntwo\r\n")).toBe("one\ntwo\n");
    expect(plainText("10%\r50%\r100%\n")).toBe("100%\n");
    expect(plainText("abcdef\rXY\n")).toBe("XYcdef\n");
  });

  it("applies backspace erasing and erase-in-line the way readline draws them", () => {
    expect(plainText("lsx\b \b -l")).toBe("ls -l");
    expect(plainText("abc\b\b")).toBe("abc");
    expect(plainText("lsx\b\x1b[K -l")).toBe("ls -l");
    expect(plainText("hello\x1b[3D\x1b[K")).toBe("he");
    expect(plainText("a\x1b[3Cb")).toBe("a   b");
    expect(plainText("old line\r\x1b[2Knew")).toBe("new");
  });

  it("drops other control characters but keeps tabs", () => {
    expect(plainText("a\x07b\x00c\tdone\x7f\u009bx")).toBe("abc\tdonex");
  });

  it("drops an escape sequence cut off at the end of the output", () => {
    expect(plainText("text\x1b[1;3")).toBe("text");
    expect(plainText("text\x1b]0;title")).toBe("text");
    expect(plainText("text\x1b")).toBe("text");
  });

  it("treats a malformed CSI as ending where it goes wrong", () => {
    expect(plainText("a\x1b[1\nb")).toBe("a\nb");
  });

  it("keeps non-ASCII text and never splits a surrogate pair with a backspace", () => {
    expect(plainText("héllo wörld 🙂")).toBe("héllo wörld 🙂");
    expect(plainText("🙂\bx")).toBe("x");
  });
});

describe("unfinishedEscapeLength", () => {
  it("measures an escape sequence that has not ended yet", () => {
    expect(unfinishedEscapeLength("abc\x1b[1;3")).toBe(5);
    expect(unfinishedEscapeLength("abc\x1b]0;ti")).toBe(6);
    expect(unfinishedEscapeLength("abc\x1b")).toBe(1);
  });

  it("is 0 when every sequence is complete", () => {
    expect(unfinishedEscapeLength("abc\x1b[1;3mdef")).toBe(0);
    expect(unfinishedEscapeLength("\x1b]0;t\x07x")).toBe(0);
    expect(unfinishedEscapeLength("plain")).toBe(0);
  });
});

describe("cutUtf8", () => {
  const bytes = (text: string) => Buffer.from(text, "utf8");

  it("counts characters, not bytes, and says how many bytes they took", () => {
    expect(cutUtf8(bytes("aé🙂b"), 3)).toEqual({ text: "aé🙂", bytes: 7 });
    expect(cutUtf8(bytes("aé🙂b"), 10)).toEqual({ text: "aé🙂b", bytes: 8 });
  });

  it("leaves a character cut by the end of the bytes for the next read", () => {
    const smile = bytes("🙂");
    expect(cutUtf8(Buffer.concat([bytes("ab"), smile.subarray(0, 2)]), 10)).toEqual({
      text: "ab",
      bytes: 2,
    });
    // Unless nothing more will come: then it is shown as a replacement character.
    const atEnd = cutUtf8(Buffer.concat([bytes("ab"), smile.subarray(0, 2)]), 10, {
      atEnd: true,
    });
    expect(atEnd.bytes).toBe(4);
    expect(atEnd.text.startsWith("ab")).toBe(true);
  });

  it("skips continuation bytes at the start, whose lead byte the ring dropped", () => {
    expect(cutUtf8(Buffer.concat([bytes("é").subarray(1), bytes("ok")]), 10)).toEqual({
      text: "ok",
      bytes: 3,
    });
  });

  it("consumes invalid bytes one at a time as replacement characters", () => {
    const cut = cutUtf8(Buffer.from([0x61, 0xff, 0xc0, 0x62]), 10);
    expect(cut).toEqual({ text: "a\ufffd\ufffdb", bytes: 4 });
  });
});
