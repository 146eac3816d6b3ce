import { describe, expect, it } from "vitest";
import { isPyroError } from "../../src/contract/errors.js";
import { parseListings, type RawEntry } from "../../src/disk/debugfs.js";
import { propertyRuns, propertySeed, random } from "../helpers/random.js";

const RUNS = propertyRuns(300);
const SEED = propertySeed(9101);
const TIMEOUT_MS = Math.max(5_000, RUNS * 10);

type Rng = () => number;
const int = (rng: Rng, below: number) => Math.floor(rng() * below);

/** Pieces a guest would pick to confuse a line-based parser. */
const TRICKS = ["\n", "\n\n", "debugfs: ls -p <12>\n", "//", "100644", " ", "\t", "é", "\u{1F600}"];

/** A name a guest's kernel accepts: any bytes but "/" and NUL, 1-255 of them. */
function guestName(rng: Rng): string {
  let name = "";
  while (name.length === 0 || rng() < 0.6) {
    if (rng() < 0.3) name += TRICKS[int(rng, TRICKS.length)]!.replace(/\//g, "");
    else name += String.fromCharCode(1 + int(rng, 126)).replace("/", "x");
  }
  const bytes = Buffer.from(name, "utf8").subarray(0, 255);
  return bytes.toString("utf8"); // a cut character becomes U+FFFD, as the parser decodes it
}

function randomListing(rng: Rng): RawEntry[] {
  const names = new Set<string>();
  return Array.from({ length: int(rng, 8) }, (_, i) => {
    const directory = rng() < 0.3;
    let name = guestName(rng);
    while (names.has(name) || name === "." || name === "..") name += "_";
    names.add(name);
    return {
      ino: 100 + i,
      mode: directory ? 0o040755 : 0o100644,
      uid: int(rng, 70000),
      gid: int(rng, 70000),
      name,
      size: directory ? 0 : int(rng, 2 ** 40),
    };
  });
}

/** What `debugfs -f -` prints for `ls -p <ino>`: raw name bytes, latin1 as read. */
function render(ino: number, entries: RawEntry[]): string {
  const record = (e: RawEntry) => {
    const size = (e.mode & 0o170000) === 0o040000 ? "" : String(e.size);
    const mode = e.mode.toString(8).padStart(6, "0");
    const name = Buffer.from(e.name, "utf8").toString("latin1");
    return `/${e.ino}/${mode}/${e.uid}/${e.gid}/${name}/${size}/\n`;
  };
  const dots = `/${ino}/040755/0/0/.//\n/2/040755/0/0/..//\n`;
  return `debugfs: ls -p <${ino}>\n${dots}${entries.map(record).join("")}\n`;
}

describe("parseListings (property)", () => {
  it(
    "reads back every listing of guest-chosen names exactly",
    () => {
      const rng = random(SEED);
      for (let run = 0; run < RUNS; run++) {
        const listings = [randomListing(rng), randomListing(rng)];
        const output = render(12, listings[0]!) + render(13, listings[1]!);
        const parsed = parseListings("img", output, [12, 13]);
        expect(parsed.get(12), `seed ${SEED} run ${run}`).toEqual(listings[0]);
        expect(parsed.get(13), `seed ${SEED} run ${run}`).toEqual(listings[1]);
      }
    },
    TIMEOUT_MS,
  );

  it(
    "answers mutated output with a listing or a guest_error, never anything else",
    () => {
      const rng = random(SEED + 1);
      for (let run = 0; run < RUNS; run++) {
        const text = render(12, randomListing(rng)).split("");
        for (let m = 1 + int(rng, 4); m > 0; m--) {
          const at = int(rng, text.length);
          const pick = rng();
          if (pick < 0.4) text.splice(at, 1);
          else if (pick < 0.8) text.splice(at, 0, "/\n0a"[int(rng, 4)]!);
          else text[at] = String.fromCharCode(int(rng, 256));
        }
        try {
          const parsed = parseListings("img", text.join(""), [12]);
          for (const entry of parsed.get(12) ?? []) {
            expect(entry.name, `seed ${SEED + 1} run ${run}`).not.toMatch(/\//);
            expect(Number.isSafeInteger(entry.ino)).toBe(true);
          }
        } catch (error) {
          expect(isPyroError(error) && error.code, `seed ${SEED + 1} run ${run}`).toBe(
            "guest_error",
          );
        }
      }
    },
    TIMEOUT_MS,
  );
});
