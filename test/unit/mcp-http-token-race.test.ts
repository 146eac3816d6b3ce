import { join } from "node:path";
import { afterEach, beforeEach, expect, it, vi } from "vitest";
import { loadToken } from "../../src/mcp/http-token.js";
import { tempDir } from "../helpers/temp.js";

// A second server starting while the first writes the generated token: its loadToken()
// runs at the moment the first one's token bytes are written.
const race = vi.hoisted(() => ({ during: undefined as (() => void) | undefined }));
vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const writeSync = ((...args: Parameters<typeof fs.writeSync>) => {
    const during = race.during;
    race.during = undefined;
    during?.();
    return (fs.writeSync as (...a: unknown[]) => number)(...args);
  }) as typeof fs.writeSync;
  return { ...fs, default: { ...fs, writeSync }, writeSync };
});

const savedHome = process.env.PYRO_HOME;
beforeEach(() => {
  process.env.PYRO_HOME = join(tempDir("pyro-token-race-"), "home");
});
afterEach(() => {
  if (savedHome === undefined) delete process.env.PYRO_HOME;
  else process.env.PYRO_HOME = savedHome;
});

it("two servers generating the token at once both start, with the same token", () => {
  let second: ReturnType<typeof loadToken> | Error | undefined;
  race.during = () => {
    try {
      second = loadToken();
    } catch (error) {
      second = error as Error;
    }
  };
  const first = loadToken();
  expect(second).not.toBeInstanceOf(Error);
  expect(second).toEqual(first);
});
