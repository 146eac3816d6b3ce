/**
 * The bearer token of `pyro mcp serve --http`. Anyone who reaches the port with the token
 * runs commands in VMs as this user, so the token lives in a file only its owner can read
 * and is compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import {
  closeSync,
  constants,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { PyroError } from "../contract/errors.js";
import { pyroHome } from "../util/paths.js";

/** Shorter tokens are guessable; longer files are not a token someone meant to write. */
const MIN_TOKEN_CHARS = 16;
const MAX_TOKEN_FILE_BYTES = 4096;

/** Where the token is generated when no `--token-file` is given. */
export function defaultTokenFile(): string {
  return join(pyroHome(), "mcp-http.token");
}

/**
 * The token from `tokenFile`, or from the default file, which is created with a fresh
 * random token (mode 0600) on first use. A named `--token-file` is never created: a typo
 * must not silently start a server with a token nobody knows.
 *
 * @throws PyroError `invalid_argument` for a missing, unsafe (group/other-readable,
 * another user's, symlink, not a regular file) or malformed token file.
 */
export function loadToken(tokenFile?: string): { token: string; file: string } {
  if (tokenFile !== undefined) return { token: readTokenFile(tokenFile), file: tokenFile };
  const file = defaultTokenFile();
  if (!exists(file)) createTokenFile(file);
  return { token: readTokenFile(file), file };
}

/** Whether `header` (an HTTP `Authorization` value) carries exactly `token`. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header ?? "");
  if (!match?.[1]) return false;
  // Hashing first makes the comparison constant-time whatever the lengths.
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(match[1]), digest(token));
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function createTokenFile(file: string): void {
  mkdirSync(join(file, ".."), { recursive: true, mode: 0o700 });
  // Written aside, then linked into place: a server starting at the same moment sees no
  // file or a whole one (never an empty one), and link() refuses to replace a file, so
  // one token wins and both servers use it.
  const temp = `${file}.${process.pid}-${randomBytes(4).toString("hex")}`;
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    writeSync(fd, `${randomBytes(32).toString("base64url")}\n`);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(temp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  } finally {
    unlinkSync(temp);
  }
}

function readTokenFile(file: string): string {
  const refuse = (problem: string, fix: string) =>
    new PyroError("invalid_argument", `token file ${file} ${problem}; ${fix}`, {
      details: { field: "token_file", path: file },
    });
  let fd: number;
  try {
    // O_NOFOLLOW: the checks below must be about the file that is read, not a link's target.
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ELOOP") throw refuse("is a symlink", "point --token-file at the file itself");
    throw refuse("cannot be read", "create it with one token of 16 or more characters");
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw refuse("is not a regular file", "point --token-file at a file");
    // Root can read another user's 0600 file: its owner would know the token.
    const uid = process.getuid?.();
    if (uid !== undefined && stat.uid !== uid) {
      throw refuse("is owned by another user", `use a token file of your own (uid ${uid})`);
    }
    if ((stat.mode & 0o077) !== 0) {
      throw refuse("can be read by other users", `run \`chmod 600 ${file}\``);
    }
    if (stat.size > MAX_TOKEN_FILE_BYTES) throw refuse("is too large", "keep only the token in it");
    const token = readFileSync(fd, "utf8").trim();
    if (token.length < MIN_TOKEN_CHARS || /\s/.test(token)) {
      throw refuse(
        `must hold one token of ${MIN_TOKEN_CHARS} or more characters without spaces`,
        "write e.g. `openssl rand -hex 32` into it",
      );
    }
    return token;
  } finally {
    closeSync(fd);
  }
}
