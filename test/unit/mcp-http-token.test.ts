import {
  chmodSync,
  chownSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isPyroError } from "../../src/contract/errors.js";
import { bearerMatches, defaultTokenFile, loadToken } from "../../src/mcp/http-token.js";
import { tempDir } from "../helpers/temp.js";

let dir: string;
const savedHome = process.env.PYRO_HOME;
beforeEach(() => {
  dir = tempDir("pyro-token-");
  process.env.PYRO_HOME = join(dir, "home");
});
afterEach(() => {
  if (savedHome === undefined) delete process.env.PYRO_HOME;
  else process.env.PYRO_HOME = savedHome;
});

function refusal(call: () => unknown): string {
  try {
    call();
  } catch (error) {
    if (isPyroError(error) && error.code === "invalid_argument") return error.message;
    throw error;
  }
  throw new Error("expected invalid_argument");
}

describe("bearer token file", () => {
  it("is generated once under PYRO_HOME, mode 0600, and reused", () => {
    const first = loadToken();
    expect(first.file).toBe(defaultTokenFile());
    expect(first.file.startsWith(process.env.PYRO_HOME as string)).toBe(true);
    expect(statSync(first.file).mode & 0o777).toBe(0o600);
    expect(first.token.length).toBeGreaterThanOrEqual(32);
    expect(loadToken().token).toBe(first.token);
    expect(readFileSync(first.file, "utf8").trim()).toBe(first.token);
  });

  it("--token-file is read, never created", () => {
    const file = join(dir, "token");
    expect(refusal(() => loadToken(file))).toMatch(/cannot be read/);
    writeFileSync(file, "0123456789abcdef0123\n", { mode: 0o600 });
    expect(loadToken(file)).toEqual({ token: "0123456789abcdef0123", file });
  });

  it("refuses a token file others can read, a symlink, a directory, or a short token", () => {
    const open = join(dir, "open");
    writeFileSync(open, "0123456789abcdef0123");
    chmodSync(open, 0o644);
    expect(refusal(() => loadToken(open))).toMatch(/chmod 600/);
    const good = join(dir, "good");
    writeFileSync(good, "0123456789abcdef0123", { mode: 0o600 });
    const link = join(dir, "link");
    symlinkSync(good, link);
    expect(refusal(() => loadToken(link))).toMatch(/symlink/);
    const folder = join(dir, "folder");
    mkdirSync(folder, { mode: 0o700 });
    expect(refusal(() => loadToken(folder))).toMatch(/not a regular file/);
    const short = join(dir, "short");
    writeFileSync(short, "tiny", { mode: 0o600 });
    expect(refusal(() => loadToken(short))).toMatch(/16 or more/);
  });

  // Root reads any file, 0600 or not: a token file someone else wrote (in a shared
  // PYRO_HOME, or named by --token-file) holds a token they know. Only root can chown.
  it.runIf(process.getuid?.() === 0)("refuses a token file another user owns", () => {
    const planted = join(dir, "planted");
    writeFileSync(planted, "0123456789abcdef0123", { mode: 0o600 });
    chownSync(planted, 65534, 65534);
    expect(refusal(() => loadToken(planted))).toMatch(/owned by another user/);
    mkdirSync(process.env.PYRO_HOME as string, { recursive: true, mode: 0o700 });
    writeFileSync(defaultTokenFile(), "0123456789abcdef0123", { mode: 0o600 });
    chownSync(defaultTokenFile(), 65534, 65534);
    expect(refusal(() => loadToken())).toMatch(/owned by another user/);
  });

  it("matches only `Bearer <the token>`", () => {
    const token = "0123456789abcdef0123";
    expect(bearerMatches(`Bearer ${token}`, token)).toBe(true);
    expect(bearerMatches(`bearer ${token}`, token)).toBe(true);
    expect(bearerMatches(undefined, token)).toBe(false);
    expect(bearerMatches(token, token)).toBe(false);
    expect(bearerMatches(`Bearer ${token}x`, token)).toBe(false);
    expect(bearerMatches(`Bearer ${token.slice(1)}`, token)).toBe(false);
    expect(bearerMatches(`Basic ${token}`, token)).toBe(false);
    expect(bearerMatches("Bearer ", token)).toBe(false);
  });
});
