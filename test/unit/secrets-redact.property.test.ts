import { describe, expect, it } from "vitest";
import { base64Forms } from "../../src/secrets/forms.js";
import { Redactor } from "../../src/secrets/redact.js";
import { propertyRuns, propertySeed, random } from "../helpers/random.js";

const MARKER = /\[REDACTED:S\d\]/g;

/**
 * Random secrets over a small alphabet (so they overlap each other and themselves), output
 * made of filler, the values and base64 of them wrapped like base64(1) does, cut into random
 * chunks: no value and no base64 form comes out, and the clear bytes are exactly those of
 * redacting the whole output at once.
 */
describe("redaction property", () => {
  it("chunked output never shows a secret and keeps the same clear bytes", () => {
    const seed = propertySeed(9001);
    const next = random(seed);
    const pick = (n: number) => Math.floor(next() * n);
    const word = (alphabet: string, min: number, max: number) =>
      Array.from({ length: min + pick(max - min + 1) }, () => alphabet[pick(alphabet.length)]).join(
        "",
      );
    for (let run = 0; run < propertyRuns(300); run++) {
      const secrets = Array.from({ length: 1 + pick(3) }, (_, i) => ({
        name: `S${i}`,
        value: word("abc", 4, 12),
      }));
      const pieces: string[] = [];
      for (let i = 0; i < 8; i++) {
        const roll = pick(3);
        const value = secrets[pick(secrets.length)]!.value;
        if (roll === 0) pieces.push(word("abcx\n", 0, 10));
        else if (roll === 1) pieces.push(value);
        else
          pieces.push(
            Buffer.from(word("xyz", 0, 3) + value + "\n")
              .toString("base64")
              .replace(/(.{6})/g, "$1\n"),
          );
      }
      const text = pieces.join("");
      const redactor = new Redactor(secrets);
      const stream = redactor.stream();
      const out: string[] = [];
      for (let at = 0; at < text.length;) {
        const size = 1 + pick(12);
        out.push(stream.push(Buffer.from(text.slice(at, at + size))).toString());
        at += size;
      }
      out.push(stream.end().toString());
      const chunked = out.join("");
      const context = `seed ${seed} run ${run}: ${JSON.stringify({ secrets, text, chunked })}`;
      const clear = chunked.replace(MARKER, "\u0000");
      for (const { value } of secrets) {
        expect(clear, context).not.toContain(value);
        for (const form of base64Forms(Buffer.from(value))) {
          expect(clear.replace(/\n/g, ""), context).not.toContain(form.toString());
        }
      }
      expect(chunked.replace(MARKER, ""), context).toBe(redactor.redact(text).replace(MARKER, ""));
    }
  }, 120_000); // npm run fuzz raises the runs
});
