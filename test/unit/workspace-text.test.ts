import { describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import {
  checkWritableText,
  checkWriteSize,
  decodeUtf8Text,
  isProbablyBinary,
  MAX_WRITE_BYTES,
} from "../../src/workspace/text.js";

function thrown(action: () => unknown): PyroError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(PyroError);
    return error as PyroError;
  }
  throw new Error("nothing was thrown");
}

describe("decodeUtf8Text", () => {
  it("decodes UTF-8 exactly, keeping a byte-order mark", () => {
    expect(decodeUtf8Text(Buffer.from("héllo\n"), "a.txt")).toBe("héllo\n");
    expect(decodeUtf8Text(Buffer.from("\ufeffx"), "a.txt")).toBe("\ufeffx");
  });

  it("refuses NUL bytes and invalid UTF-8 with a message pointing to workspace export", () => {
    for (const bytes of [Buffer.from([0x61, 0x00, 0x62]), Buffer.from([0xff, 0xfe, 0x41])]) {
      const error = thrown(() => decodeUtf8Text(bytes, "/workspace/img.png"));
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toBe(
        '"/workspace/img.png" is a binary file (not UTF-8 text); the file tools are text-only — use workspace export to copy it to the host',
      );
    }
  });

  it("decodes a read cut inside a multi-byte character when told it was truncated", () => {
    const whole = Buffer.from("ab€😀");
    for (let cut = 0; cut <= whole.length; cut++) {
      const prefix = whole.subarray(0, cut);
      const text = decodeUtf8Text(prefix, "a.txt", { truncated: true });
      expect("ab€😀".startsWith(text)).toBe(true);
      expect(Buffer.byteLength(text)).toBeGreaterThan(cut - 4);
    }
    expect(() => decodeUtf8Text(whole.subarray(0, 3), "a.txt")).toThrow(/binary/);
  });
});

describe("isProbablyBinary", () => {
  it("calls NUL-holding or non-UTF-8 content binary, and UTF-8 text not", () => {
    expect(isProbablyBinary(Buffer.from("plain\ttext\r\n"))).toBe(false);
    expect(isProbablyBinary(Buffer.alloc(0))).toBe(false);
    expect(isProbablyBinary(Buffer.from([0x50, 0x4e, 0x47, 0x00]))).toBe(true);
    expect(isProbablyBinary(Buffer.from([0xc3]))).toBe(true);
  });
});

describe("write size", () => {
  it("takes exactly 1 MiB and refuses one byte more, counting UTF-8 bytes", () => {
    expect(() => checkWriteSize("x".repeat(MAX_WRITE_BYTES), "a")).not.toThrow();
    const error = thrown(() => checkWriteSize("é".repeat(MAX_WRITE_BYTES / 2) + "x", "big.txt"));
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toContain("1048577 bytes");
    expect(error.message).toContain("at most 1048576 bytes (1 MiB)");
  });

  it("refuses text that UTF-8 cannot carry or that is binary", () => {
    expect(thrown(() => checkWritableText("a\0b", "x")).message).toContain("NUL character");
    expect(thrown(() => checkWritableText("a\ud800b", "x")).message).toContain("surrogate");
    expect(() => checkWritableText("emoji 😀 ok", "x")).not.toThrow();
  });
});
