import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import { Redactor } from "../../src/secrets/redact.js";
import { readSecretInputs, resolveSecretEnv } from "../../src/secrets/store.js";
import { redactError, redactingHandlers, redactStrings } from "../../src/secrets/workspace.js";
import { tempDir } from "../helpers/temp.js";

const SECRETS = [{ name: "TOKEN", source: "value" as const, value: "hunter2-hunter2" }];
const redactor = new Redactor(SECRETS);

describe("secret inputs", () => {
  it("reads a file once, as given, and keeps inline values", async () => {
    const file = join(tempDir("pyro-secret-unit-"), "key");
    writeFileSync(file, "from-file\n");
    expect(
      await readSecretInputs([
        { name: "A", value: "inline" },
        { name: "B", file_path: file },
      ]),
    ).toEqual([
      { name: "A", source: "value", value: "inline" },
      { name: "B", source: "file", value: "from-file\n" },
    ]);
  });

  it.each([
    [[{ name: "A", value: "\u0000x" }], /UTF-8 text without NUL/],
    [[{ name: "1A", value: "x" }], /not valid/],
    [[{ name: "A".repeat(65), value: "x" }], /not valid/],
    [Array.from({ length: 33 }, (_, i) => ({ name: `S${i}`, value: "x" })), /at most 32/],
    [[{ name: "A", value: "x".repeat(64 * 1024 + 1) }], /larger than 65536/],
  ])("refuses %#", async (inputs, message) => {
    const error = await readSecretInputs(inputs).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PyroError);
    expect(error).toMatchObject({
      code: "invalid_argument",
      message: expect.stringMatching(message),
    });
  });

  it("refuses a file that is not UTF-8 text without quoting it", async () => {
    const file = join(tempDir("pyro-secret-unit-"), "bin");
    writeFileSync(file, Buffer.from([0xff, 0xfe, 0x41]));
    const error = (await readSecretInputs([{ name: "B", file_path: file }]).catch(
      (e: unknown) => e,
    )) as PyroError;
    expect(error.code).toBe("invalid_argument");
    expect(error.message).not.toContain("\ufffd");
  });
});

describe("secret_env", () => {
  it("maps variables to values and refuses unknown secrets and bad variable names", () => {
    expect(resolveSecretEnv({ API_KEY: "TOKEN" }, SECRETS)).toEqual({ API_KEY: "hunter2-hunter2" });
    expect(() => resolveSecretEnv({ X: "NOPE" }, SECRETS)).toThrow(/unknown secret "NOPE".*TOKEN/);
    expect(() => resolveSecretEnv({ "A=B": "TOKEN" }, SECRETS)).toThrow(/not a valid name/);
    expect(() => resolveSecretEnv({ X: "NOPE" }, [])).toThrow(/secrets: none/);
  });
});

describe("redaction helpers", () => {
  it("streams exec chunks through one redaction stream per output stream", () => {
    const out: string[] = [];
    const err: string[] = [];
    const { handlers, finish } = redactingHandlers(
      { onStdout: (c) => out.push(c.toString()), onStderr: (c) => err.push(c.toString()) },
      redactor,
    );
    handlers.onStdout!(Buffer.from("a hunter2-"));
    handlers.onStderr!(Buffer.from("hunter2-hun"));
    handlers.onStdout!(Buffer.from("hunter2 b\n"));
    handlers.onStderr!(Buffer.from("ter2"));
    finish({ stdout_truncated: false, stderr_truncated: false });
    expect(out.join("")).toBe("a [REDACTED:TOKEN] b\n");
    expect(err.join("")).toBe("[REDACTED:TOKEN]");
  });

  it("redacts an error's message and details and drops its cause", () => {
    const error = new PyroError("guest_error", "it said hunter2-hunter2", {
      details: { service: { command: ["echo", "hunter2-hunter2"] }, n: 1 },
      cause: new Error("hunter2-hunter2"),
    });
    const redacted = redactError(error, redactor) as PyroError;
    expect(redacted).toBeInstanceOf(PyroError);
    expect(redacted.message).toBe("it said [REDACTED:TOKEN]");
    expect(redacted.details).toEqual({ service: { command: ["echo", "[REDACTED:TOKEN]"] }, n: 1 });
    expect(redacted.cause).toBeUndefined();
    const clean = new PyroError("timeout", "nothing secret");
    expect(redactError(clean, redactor)).toBe(clean);
    expect(redactStrings({ a: ["hunter2-hunter2", 3, null] }, redactor)).toEqual({
      a: ["[REDACTED:TOKEN]", 3, null],
    });
  });
});
