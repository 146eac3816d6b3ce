import { mkdir, open, rm } from "node:fs/promises";
import { constants } from "node:fs";
import { join } from "node:path";
import type { z } from "zod";
import { PyroError } from "../contract/errors.js";
import type { SecretInput } from "../contract/workspace.js";
import { isErrno, readJsonIfExists, writeJsonAtomic } from "../util/fs.js";
import { pyroHome } from "../util/paths.js";

/**
 * The host's secret store: `PYRO_HOME/secrets/<workspace_id>/values.json`, mode 0600 in
 * 0700 directories, apart from the workspace's own directory so that nothing which copies
 * or lists a workspace's files (records, journals, archives) can pick a value up. Records
 * keep only names and source kinds ({@link secretSummaries}).
 */

/** Secret names are environment-variable-like, so they are also safe guest file names. */
export const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
export const MAX_SECRETS = 32;
/** Per secret, inline or from a file (issue 9: files of at most 64 KiB). */
export const MAX_SECRET_BYTES = 64 * 1024;

export interface StoredSecret {
  name: string;
  source: "value" | "file";
  value: string;
}

type SecretInputValue = z.output<typeof SecretInput>;

/**
 * Checks names and sizes and reads each secret file once (regular file, at most 64 KiB,
 * UTF-8 text without NUL bytes, since values travel as environment variables). Everything
 * is refused with `invalid_argument` before anything is created.
 */
export async function readSecretInputs(inputs: readonly SecretInputValue[]) {
  if (inputs.length > MAX_SECRETS) {
    throw invalid(`at most ${MAX_SECRETS} secrets per workspace, got ${inputs.length}`);
  }
  const seen = new Set<string>();
  const secrets: StoredSecret[] = [];
  for (const input of inputs) {
    if (!SECRET_NAME.test(input.name)) {
      throw invalid(
        `secret name "${input.name.slice(0, 80)}" is not valid: use letters, digits and _, ` +
          "starting with a letter or _, at most 64 characters",
      );
    }
    if (seen.has(input.name)) throw invalid(`secret "${input.name}" is given twice`);
    seen.add(input.name);
    const fromFile = "file_path" in input;
    const value = fromFile ? await readSecretFile(input.name, input.file_path) : input.value;
    checkValue(input.name, Buffer.from(value, "utf8"));
    secrets.push({ name: input.name, source: fromFile ? "file" : "value", value });
  }
  return secrets;
}

/** What records and results show of the secrets: names and where they came from. */
export function secretSummaries(secrets: readonly StoredSecret[]) {
  return secrets.map(({ name, source }) => ({ name, source }));
}

export function secretsDir(workspaceId: string): string {
  return join(pyroHome(), "secrets", workspaceId);
}

export async function saveSecrets(workspaceId: string, secrets: readonly StoredSecret[]) {
  if (secrets.length === 0) return;
  // Both levels 0700: the store's own directory is the one place values live on the host.
  await mkdir(secretsDir(workspaceId), { recursive: true, mode: 0o700 });
  await writeJsonAtomic(join(secretsDir(workspaceId), "values.json"), secrets, 0o600, {
    createParent: false,
  });
}

/** The workspace's secrets; none when it was created without any (or was deleted). */
export async function loadSecrets(workspaceId: string): Promise<StoredSecret[]> {
  return (
    (await readJsonIfExists<StoredSecret[]>(join(secretsDir(workspaceId), "values.json"))) ?? []
  );
}

export async function deleteSecrets(workspaceId: string): Promise<void> {
  await rm(secretsDir(workspaceId), { recursive: true, force: true });
}

/**
 * `{ENV_VAR: SECRET_NAME}` of exec, service start and shell open as the environment the
 * guest process gets. An unknown name fails before any guest work.
 */
export function resolveSecretEnv(
  secretEnv: Record<string, string>,
  secrets: readonly StoredSecret[],
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [variable, name] of Object.entries(secretEnv)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(variable) || variable.length > 128) {
      throw invalid(`secret_env variable "${variable.slice(0, 80)}" is not a valid name`);
    }
    const secret = secrets.find((s) => s.name === name);
    if (!secret) {
      const known = secrets.map((s) => s.name).join(", ") || "none";
      throw invalid(
        `secret_env ${variable} names an unknown secret "${name.slice(0, 80)}"; ` +
          `this workspace's secrets: ${known}`,
        { field: "secret_env", secret: name.slice(0, 80) },
      );
    }
    env[variable] = secret.value;
  }
  return env;
}

async function readSecretFile(name: string, path: string): Promise<string> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const why = isErrno(error, "ENOENT") ? "does not exist" : "cannot be read";
    throw invalid(`secret file for "${name}" (${path}) ${why}`, { field: "secrets", path });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw invalid(`secret file for "${name}" (${path}) is not a regular file`, { path });
    }
    // Read once, bounded: a file that grows while we read cannot make us read more.
    const buffer = Buffer.alloc(MAX_SECRET_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0 || (length += bytesRead) === buffer.length) break;
    }
    const bytes = buffer.subarray(0, length);
    checkValue(name, bytes);
    return bytes.toString("utf8");
  } finally {
    await handle.close();
  }
}

function checkValue(name: string, bytes: Buffer): void {
  if (bytes.length === 0) throw invalid(`secret "${name}" is empty`);
  if (bytes.length > MAX_SECRET_BYTES) {
    throw invalid(`secret "${name}" is larger than ${MAX_SECRET_BYTES} bytes`);
  }
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  if (bytes.includes(0) || !Buffer.from(text, "utf8").equals(bytes)) {
    throw invalid(`secret "${name}" must be UTF-8 text without NUL bytes`);
  }
}

function invalid(message: string, details: Record<string, unknown> = {}): PyroError {
  return new PyroError("invalid_argument", message, { details: { field: "secrets", ...details } });
}
