import { describe, expect, it } from "vitest";
import { base64Forms, needlesOf } from "../../src/secrets/forms.js";
import { redact, Redactor } from "../../src/secrets/redact.js";

const TOKEN = { name: "TOKEN", value: "s3cr3t-t0ken-value" };

/** Feeds `text` to a fresh stream in the given pieces and joins what comes out. */
function streamed(redactor: Redactor, pieces: string[]): string {
  const stream = redactor.stream();
  const out = pieces.map((piece) => stream.push(Buffer.from(piece)).toString());
  return out.join("") + stream.end().toString();
}

describe("redact", () => {
  it("replaces each occurrence of a value with its marker", () => {
    expect(redact(`a ${TOKEN.value} b ${TOKEN.value}${TOKEN.value}\n`, [TOKEN])).toBe(
      "a [REDACTED:TOKEN] b [REDACTED:TOKEN][REDACTED:TOKEN]\n",
    );
  });

  it("leaves output without secrets as it is, byte for byte", () => {
    const text = "nothing here \u00e9\r\n\u0000";
    expect(redact(text, [TOKEN])).toBe(text);
    expect(redact(text, [])).toBe(text);
  });

  it("catches a value split across two chunks at every offset", () => {
    const redactor = new Redactor([TOKEN]);
    const text = `before ${TOKEN.value} after`;
    for (let cut = 0; cut <= text.length; cut++) {
      expect(streamed(redactor, [text.slice(0, cut), text.slice(cut)]), `cut ${cut}`).toBe(
        "before [REDACTED:TOKEN] after",
      );
    }
  });

  it("catches a value written one byte at a time", () => {
    const text = `x${TOKEN.value}y`;
    expect(streamed(new Redactor([TOKEN]), [...text])).toBe("x[REDACTED:TOKEN]y");
  });

  it("emits what cannot become a secret at once and holds back only a possible prefix", () => {
    const stream = new Redactor([TOKEN]).stream();
    expect(stream.push(Buffer.from("ready\n")).toString()).toBe("ready\n");
    expect(stream.push(Buffer.from("tok s3cr")).toString()).toBe("tok ");
    expect(stream.push(Buffer.from("3t")).toString()).toBe("");
    expect(stream.push(Buffer.from("!")).toString()).toBe("s3cr3t!");
    expect(stream.end().toString()).toBe("");
  });

  it("flushes a held prefix at the end of the stream", () => {
    expect(streamed(new Redactor([TOKEN]), ["value: s3cr3t-t0"])).toBe("value: s3cr3t-t0");
  });

  it("finds the base64 forms at all three alignments, also wrapped at 76 columns", () => {
    const redactor = new Redactor([TOKEN]);
    for (const prefix of ["", "a", "ab", "abc"]) {
      const encoded = Buffer.from(`${prefix}${TOKEN.value}\n`).toString("base64");
      const out = redactor.redact(encoded);
      expect(out, prefix).toContain("[REDACTED:TOKEN]");
      for (const form of base64Forms(Buffer.from(TOKEN.value))) {
        expect(out).not.toContain(form.toString());
      }
    }
    const env = `HOME=/root\n${"PATH=/usr/bin\n".repeat(4)}TOKEN=${TOKEN.value}\nX=1\n`;
    for (let shift = 0; shift < 76; shift += 5) {
      const wrapped = Buffer.from("#".repeat(shift) + env)
        .toString("base64")
        .replace(/(.{76})/g, "$1\n");
      const out = streamed(redactor, [wrapped.slice(0, 100), wrapped.slice(100)]);
      expect(out.replace(/\n/g, ""), `shift ${shift}`).not.toMatch(/czNjcjN0|3IzdC10|zY3IzdC/);
      expect(out).toContain("[REDACTED:TOKEN]");
    }
  });

  it("redacts a secret file's value without its trailing newline, and its long lines", () => {
    const key = {
      name: "KEY",
      value: "-----BEGIN-----\nAAAABBBBCCCCDDDD\nEEEEFFFFGGGG\n-----END-----\n",
    };
    expect(redact("AAAABBBBCCCCDDDD", [key])).toBe("[REDACTED:KEY]");
    expect(redact("x\r\nEEEEFFFFGGGG\r\n", [key])).toBe("x\r\n[REDACTED:KEY]\r\n");
    expect(redact(`v=${key.value.trimEnd()}.`, [key])).toBe("v=[REDACTED:KEY].");
    expect(redact("short\n", [{ name: "A", value: "x\nshort\n" }])).toBe("short\n");
  });

  it("covers overlapping secrets wholly, naming each", () => {
    const secrets = [
      { name: "A", value: "abcd1234" },
      { name: "B", value: "1234wxyz" },
    ];
    expect(redact("--abcd1234wxyz--", secrets)).toBe("--[REDACTED:A][REDACTED:B]--");
    const text = "--abcd1234wxyz--";
    for (let cut = 0; cut <= text.length; cut++) {
      const out = streamed(new Redactor(secrets), [text.slice(0, cut), text.slice(cut)]);
      expect(out.replace(/\[REDACTED:[AB]\]/g, ""), `cut ${cut}`).toBe("----");
    }
  });

  it("makes no needle of an empty value and shares needles of equal values", () => {
    expect(needlesOf([{ name: "E", value: "" }])).toEqual([]);
    const twice = needlesOf([
      { name: "A", value: "same-value" },
      { name: "B", value: "same-value" },
    ]);
    expect(new Set(twice.map((n) => n.name))).toEqual(new Set(["A"]));
  });

  it("redacts a tail that starts a secret when the output was cut at a bound", () => {
    const redactor = new Redactor([TOKEN]);
    const cut = `x ${TOKEN.value.slice(0, 6)}`;
    expect(redactor.redactBytes(Buffer.from(cut)).toString()).toBe(cut);
    expect(redactor.redactBytes(Buffer.from(cut), { truncated: true }).toString()).toBe(
      "x [REDACTED:TOKEN]",
    );
  });

  it("refuses output after the end", () => {
    const stream = new Redactor([TOKEN]).stream();
    stream.end();
    expect(() => stream.push(Buffer.from("x"))).toThrow(/after end/);
  });
});
