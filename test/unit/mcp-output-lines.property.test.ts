/**
 * Property tests for the output lines MCP progress carries, on random command output
 * (multi-byte characters, CR progress bars, colours, controls, long lines) cut into random
 * chunks. `npm run fuzz` runs them with more cases and fresh seeds.
 */
import { describe, expect, it } from "vitest";
import {
  MAX_PROGRESS_LINE_CHARS,
  MAX_PROGRESS_LINES,
  OutputLines,
  type OutputStream,
} from "../../src/mcp/output-lines.js";
import { propertyRuns, propertySeed, random } from "../helpers/random.js";

type Next = () => number;
const pick = <T>(next: Next, items: readonly T[]): T => items[Math.floor(next() * items.length)]!;

const PIECES = [
  "ok",
  " ",
  "\n",
  "\r\n",
  "\r",
  "\t",
  "é",
  "🙂",
  "\x1b[1;31m",
  "\x1b[0m",
  "\x1b]0;title\x07",
  "\x00",
  "\x7f",
  "\u009b",
  "x".repeat(300),
];

function randomOutput(next: Next): Buffer {
  const pieces = Array.from({ length: Math.floor(next() * 60) }, () => pick(next, PIECES));
  return Buffer.from(pieces.join(""));
}

/** `bytes` cut at random points, so characters and escapes split anywhere. */
function randomChunks(next: Next, bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const size = 1 + Math.floor(next() * 40);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

const seed = propertySeed(20261130);
const runs = propertyRuns(100);

describe("OutputLines (property)", () => {
  it("shows the same lines however the output was cut into chunks", () => {
    const next = random(seed);
    for (let run = 0; run < runs; run++) {
      const output = { stdout: randomOutput(next), stderr: randomOutput(next) };
      const whole = new OutputLines();
      whole.push("stdout", output.stdout);
      whole.push("stderr", output.stderr);
      const chunked = new OutputLines();
      for (const stream of ["stdout", "stderr"] as const) {
        for (const chunk of randomChunks(next, output[stream])) chunked.push(stream, chunk);
      }
      expect(chunked.take(), `seed ${seed}, run ${run}`).toEqual(whole.take());
    }
  }, 30_000);

  it("every message is bounded and free of control characters but tabs", () => {
    const next = random(seed + 1);
    for (let run = 0; run < runs; run++) {
      const lines = new OutputLines();
      for (let step = 0; step < 10; step++) {
        const stream: OutputStream = next() < 0.5 ? "stdout" : "stderr";
        for (const chunk of randomChunks(next, randomOutput(next))) lines.push(stream, chunk);
        if (next() < 0.3) continue;
        const message = lines.take();
        if (message === undefined) continue;
        const shown = message.split("\n");
        expect(shown.length, `seed ${seed + 1}, run ${run}`).toBeLessThanOrEqual(
          MAX_PROGRESS_LINES + 1,
        );
        for (const line of shown) {
          const text = line.replace(/^\[stderr\] /, "");
          expect(text.length).toBeLessThanOrEqual(MAX_PROGRESS_LINE_CHARS + 1);
          // eslint-disable-next-line no-control-regex
          expect(text).not.toMatch(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/);
        }
      }
    }
  }, 30_000);
});
