/**
 * Property tests for the shell's plain-text filter and UTF-8 cutting, on random terminal
 * output built from the pieces real programs send (colours, titles, CR, backspace, cut-off
 * sequences, multi-byte characters). `npm run fuzz` runs them with more cases and fresh
 * seeds (PYRO_PROPERTY_RUNS, PYRO_PROPERTY_SEED).
 */
import { describe, expect, it } from "vitest";
import { cutUtf8, plainText } from "../../src/workspace/terminal-text.js";
import { propertyRuns, propertySeed, random } from "../helpers/random.js";

type Next = () => number;
const pick = <T>(next: Next, items: readonly T[]): T => items[Math.floor(next() * items.length)]!;

const PIECES = [
  "hello",
  " ",
  "\n",
  "\r\n",
  "\r",
  "\b",
  "\t",
  "é",
  "🙂",
  "\x1b[0m",
  "\x1b[1;31m",
  "\x1b[K",
  "\x1b[2K",
  "\x1b[3D",
  "\x1b[5C",
  "\x1b[?2004h",
  "\x1b]0;title\x07",
  "\x1b]8;;http://x\x1b\\",
  "\x1bP1$r\x1b\\",
  "\x1b(B",
  "\x1b=",
  "\x1b",
  "\x1b[",
  "\x1b]",
  "\x07",
  "\x00",
  "\x7f",
  "\u009b",
  "\u009c",
] as const;

function randomOutput(next: Next): string {
  const count = Math.floor(next() * 40);
  let text = "";
  for (let i = 0; i < count; i++) {
    text += next() < 0.15 ? String.fromCharCode(Math.floor(next() * 0xd800)) : pick(next, PIECES);
  }
  return text;
}

const runs = propertyRuns(500);
const seed = propertySeed(0x5e11);

describe("plainText on random terminal output", () => {
  it("never throws, never emits ESC or other controls, and is idempotent", () => {
    const next = random(seed);
    for (let run = 0; run < runs; run++) {
      const raw = randomOutput(next);
      const where = `seed ${seed}, run ${run}: ${JSON.stringify(raw)}`;
      const plain = plainText(raw);
      expect(plain.includes("\x1b"), where).toBe(false);
      // eslint-disable-next-line no-control-regex
      expect(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(plain), where).toBe(false);
      expect(plainText(plain), where).toBe(plain);
    }
  });
});

describe("cutUtf8 on random bytes", () => {
  it("never returns more characters than asked, and always moves on at the end", () => {
    const next = random(seed + 1);
    for (let run = 0; run < runs; run++) {
      const text = randomOutput(next);
      const whole = Buffer.from(text, "utf8");
      // A random slice: may start and end inside characters, as ring reads do.
      const from = Math.floor(next() * (whole.length + 1));
      const bytes = Buffer.concat([
        whole.subarray(from),
        Buffer.from(Array.from({ length: Math.floor(next() * 3) }, () => Math.floor(next() * 256))),
      ]);
      const maxChars = 1 + Math.floor(next() * 30);
      const where = `seed ${seed + 1}, run ${run}`;
      const atEnd = next() < 0.5;
      const cut = cutUtf8(bytes, maxChars, { atEnd });
      expect([...cut.text].length, where).toBeLessThanOrEqual(maxChars);
      expect(cut.bytes, where).toBeLessThanOrEqual(bytes.length);
      // When no more bytes will come, a read always moves on: a reader never spins.
      if (atEnd && bytes.length > 0) expect(cut.bytes, where).toBeGreaterThan(0);
    }
  });

  it("reassembles valid text exactly when read in pieces of random size", () => {
    const next = random(seed + 2);
    for (let run = 0; run < runs; run++) {
      const text = randomOutput(next);
      const bytes = Buffer.from(text, "utf8");
      let offset = 0;
      let rebuilt = "";
      for (let guard = 0; offset < bytes.length && guard < 10_000; guard++) {
        // Like a ring read of at most 4 bytes per character, ending wherever it ends.
        const maxChars = 1 + Math.floor(next() * 8);
        const window = bytes.subarray(offset, offset + maxChars * 4);
        const atEnd = offset + window.length === bytes.length;
        const cut = cutUtf8(window, maxChars, { atEnd });
        rebuilt += cut.text;
        offset += cut.bytes;
      }
      expect(rebuilt, `seed ${seed + 2}, run ${run}`).toBe(text);
    }
  });
});
